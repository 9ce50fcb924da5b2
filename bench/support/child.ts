/**
 * Benchmarked child processes: the real CLI (or a bench script) in its own process, with its wall
 * time, exact peak RSS and CPU time (from getrusage inside the child, see rusage-preload.mjs), and
 * optionally a V8 CPU profile. Plus /proc readings for processes that keep running (idle CPU).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = fileURLToPath(new URL('../../', import.meta.url));
const PRELOAD = fileURLToPath(new URL('./rusage-preload.mjs', import.meta.url));
const CLK_TCK = 100; // USER_HZ on Linux; /proc/<pid>/stat counts CPU time in these ticks

export interface ChildUsage {
  code: number | null;
  signal: NodeJS.Signals | null;
  wallMs: number;
  /** Peak resident set size of the child (getrusage ru_maxrss). */
  maxRssBytes: number;
  cpuUserMs: number;
  cpuSystemMs: number;
  timedOut: boolean;
  /** process.memoryUsage() at the sampled moment of highest RSS (when `sampleMemoryMs` was set). */
  atPeak?: NodeJS.MemoryUsage;
  stdout: string;
  stderr: string;
}

export interface MeasuredChild {
  child: ChildProcess;
  pid: number;
  /** Resolves when the child exits, with its usage. */
  done: Promise<ChildUsage>;
}

export interface SpawnOptions {
  /** Write a .cpuprofile of the child into this directory (node --cpu-prof). */
  cpuProfileDir?: string;
  /** Name for the profile file (default: derived from the first argument). */
  profileName?: string;
  env?: Record<string, string>;
  /** Run TypeScript directly (tsx, `source` condition) rather than bin/metering.js. */
  typescript?: boolean;
  /** Sample the child's process.memoryUsage() this often, to break its peak RSS down. */
  sampleMemoryMs?: number;
  /** SIGKILL the child after this long (a benchmark must end); `timedOut` is then set. */
  timeoutMs?: number;
  /** Also write the child's stderr to this file as it comes (a long run's progress can be followed). */
  stderrFile?: string;
}

let seq = 0;

/** Starts `node [flags] <args>` in the repository and measures it. */
export function spawnMeasured(args: string[], options: SpawnOptions = {}): MeasuredChild {
  const usageFile = path.join(os.tmpdir(), `bench-rusage-${process.pid}-${++seq}.json`);
  const nodeFlags = ['--import', PRELOAD];
  if (options.typescript) nodeFlags.push('--import', 'tsx');
  if (options.cpuProfileDir) {
    fs.mkdirSync(options.cpuProfileDir, { recursive: true });
    nodeFlags.push('--cpu-prof', `--cpu-prof-dir=${options.cpuProfileDir}`, `--cpu-prof-name=${options.profileName ?? path.basename(args[0] ?? 'child')}-${process.pid}-${seq}.cpuprofile`);
  }
  const t0 = performance.now();
  const child = spawn(process.execPath, [...nodeFlags, ...args], {
    cwd: REPO,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, METERING_LOG_LEVEL: 'warn', ...options.env, BENCH_RUSAGE_FILE: usageFile, BENCH_MEMORY_SAMPLE_MS: String(options.sampleMemoryMs ?? 0) },
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  const stderrFd = options.stderrFile ? fs.openSync(options.stderrFile, 'w') : undefined;
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
    if (stderrFd !== undefined) fs.writeSync(stderrFd, d);
  });
  if (stderrFd !== undefined) child.once('close', () => fs.closeSync(stderrFd));
  // Fallback for a child killed before its exit handler ran: its VmHWM, polled.
  let polledHwm = 0;
  const poller = setInterval(() => {
    try {
      const hwm = procRss(child.pid!).hwmBytes;
      if (Number.isFinite(hwm)) polledHwm = Math.max(polledHwm, hwm);
    } catch {
      // Exited between two polls.
    }
  }, 250);
  let timedOut = false;
  const timer = options.timeoutMs
    ? setTimeout(() => {
        timedOut = true;
        child.kill('SIGKILL');
      }, options.timeoutMs)
    : undefined;
  const done = new Promise<ChildUsage>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      clearInterval(poller);
      const wallMs = performance.now() - t0;
      let u: { maxRssKb: number; userUs: number; systemUs: number; atPeak?: NodeJS.MemoryUsage } = { maxRssKb: 0, userUs: 0, systemUs: 0 };
      try {
        u = JSON.parse(fs.readFileSync(usageFile, 'utf8')) as typeof u;
        fs.rmSync(usageFile, { force: true });
      } catch {
        // Killed before its exit handler ran: no usage record.
      }
      resolve({ code, signal, wallMs, maxRssBytes: u.maxRssKb ? u.maxRssKb * 1024 : polledHwm, cpuUserMs: u.userUs / 1000, cpuSystemMs: u.systemUs / 1000, timedOut, ...(u.atPeak ? { atPeak: u.atPeak } : {}), stdout, stderr });
    });
  });
  return { child, pid: child.pid!, done };
}

/** Runs a child to completion; throws with its stderr unless it exits 0. */
export async function runMeasured(args: string[], options: SpawnOptions = {}): Promise<ChildUsage> {
  const r = await spawnMeasured(args, options).done;
  if (r.code !== 0) throw new Error(`${args.join(' ')} exited ${r.code ?? r.signal}:\n${r.stderr.slice(-4000)}`);
  return r;
}

/** CPU time (user + system) a live process has used so far, from /proc/<pid>/stat. */
export function procCpuMs(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name, which is in parentheses and may contain spaces.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return ((utime + stime) * 1000) / CLK_TCK;
}

/** Current and peak resident set size of a live process, from /proc/<pid>/status. */
export function procRss(pid: number): { rssBytes: number; hwmBytes: number } {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
  return { rssBytes: kb('VmRSS'), hwmBytes: kb('VmHWM') };
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
