/**
 * The three consumers the benchmark puts side by side, each one run in its own measured process:
 * `metering rollup` (the compiled CLI), the DuckDB twin SQL alone (duckdb-twin.ts --loader json)
 * and the reference TypeScript model (reference-model.ts). For each: wall time, peak RSS, the peak
 * size of DuckDB's temp directory (`<state>.tmp`, what it spilled) and the state's size after the
 * run, and the counts from report.json; or why it did not finish.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { BuiltCli } from './build.js';
import { spawnMeasured, type ChildUsage, type SpawnOptions } from './child.js';
import { diskBytes, samplePeak } from './dir-size.js';
import { readReportCounts, type ReportCounts } from './report-counts.js';
import { secs } from './report.js';

export interface RunOutcome {
  usage: ChildUsage;
  /** Undefined when the run did not finish (see `failure`). */
  counts: ReportCounts | undefined;
  failure: string | undefined;
  /** Peak bytes in `<out>/state.duckdb.tmp` while it ran (0: it did not spill, or has no DuckDB). */
  spillPeakBytes: number;
  /** The state it left in `<out>`: state.duckdb (+ .wal) or, for the TypeScript consumer, state.json. */
  stateBytes: number;
  /** The twin only: which loader the engine really used. */
  loader?: string;
}

export interface RunSpec {
  bucket: string;
  out: string;
  nowMs: number;
  limitMs: number;
  /** DuckDB memory_limit (the CLI's --memory-limit, the twin's memoryLimit). */
  memoryLimit: string;
  /** The CLI's --chunk-bytes (its default when not given). */
  chunkBytes?: string;
  /** CPU profile of the child into this directory under this name. */
  profile?: { dir: string; name: string };
  /** The child's debug log (statements, phases, DuckDB memory by tag) into this file, as it comes. */
  statementLog?: string;
}

/** Why a child failed: time limit, V8's fatal error line, or the last line of its stderr. */
export function failure(u: ChildUsage): string {
  if (u.timedOut) return `did not finish: killed after ${secs(u.wallMs)} s (time limit)`;
  const lines = u.stderr
    .trim()
    .split('\n')
    .filter((l) => !l.startsWith('Node.js v'));
  // V8's fatal line (out of heap), else the first error line of a stack trace, else the last line.
  const why = lines.find((l) => l.includes('FATAL ERROR')) ?? lines.find((l) => /^\w*Error\b|"msg"|^metering/.test(l.trim())) ?? lines.at(-1) ?? '';
  return `failed (exit ${u.code ?? u.signal}): ${why.trim().slice(0, 300)}`;
}

const STATE_FILES = ['state.duckdb', 'state.duckdb.wal', 'state.json'];

async function measured(args: string[], spec: RunSpec, options: SpawnOptions, counts: (u: ChildUsage) => ReportCounts & { loader?: string }): Promise<RunOutcome> {
  const spill = samplePeak(path.join(spec.out, 'state.duckdb.tmp'));
  const env = spec.statementLog ? { ...options.env, METERING_LOG_LEVEL: 'debug' } : options.env;
  const usage = await spawnMeasured(args, {
    ...options,
    ...(env ? { env } : {}),
    timeoutMs: spec.limitMs,
    ...(spec.profile ? { cpuProfileDir: spec.profile.dir, profileName: spec.profile.name } : {}),
    ...(spec.statementLog ? { stderrFile: spec.statementLog } : {}),
  }).done;
  const spillPeakBytes = spill.stop();
  const stateBytes = STATE_FILES.reduce((s, f) => s + diskBytes(path.join(spec.out, f)), 0);
  if (usage.code !== 0) return { usage, counts: undefined, failure: failure(usage), spillPeakBytes, stateBytes };
  try {
    const { loader, ...c } = counts(usage);
    return { usage, counts: c, failure: undefined, spillPeakBytes, stateBytes, ...(loader ? { loader } : {}) };
  } catch (err) {
    return { usage, counts: undefined, failure: `finished but its result is unreadable: ${(err as Error).message}`, spillPeakBytes, stateBytes };
  }
}

/** Whether this build's `metering rollup` takes --memory-limit (today's TypeScript consumer does not). */
export function cliHasMemoryLimit(cli: BuiltCli): boolean {
  const r = spawnSync(process.execPath, [cli.bin, 'rollup', '--help'], { encoding: 'utf8' });
  return r.stdout.includes('--memory-limit');
}

/** The node arguments of one `metering rollup` of a spec: what is measured, and what `--keep` prints to carry it on. */
export function rollupCliArgs(cli: BuiltCli, spec: RunSpec, withMemoryLimit: boolean): string[] {
  const args = [cli.bin, 'rollup', '--source', spec.bucket, '--out', spec.out, '--now', new Date(spec.nowMs).toISOString()];
  if (withMemoryLimit) args.push('--memory-limit', spec.memoryLimit);
  if (spec.chunkBytes !== undefined) args.push('--chunk-bytes', spec.chunkBytes);
  return args;
}

export function runRollupCli(cli: BuiltCli, spec: RunSpec, withMemoryLimit: boolean): Promise<RunOutcome> {
  return measured(rollupCliArgs(cli, spec, withMemoryLimit), spec, { sampleMemoryMs: 50 }, () => readReportCounts(path.join(spec.out, 'report.json')));
}

const childJson = (u: ChildUsage): ReportCounts & { loader?: string } => JSON.parse(u.stdout.trim().split('\n').at(-1)!) as ReportCounts & { loader?: string };

/** The twin script: compiled into the CLI's build when it could be (the same start-up as the CLI), else through tsx. */
export const TWIN_SCRIPT = 'bench/support/duckdb-twin.ts';

export function runTwinSqlAlone(cli: BuiltCli, spec: RunSpec): Promise<RunOutcome> {
  const compiled = cli.script(TWIN_SCRIPT);
  const args = [compiled ?? TWIN_SCRIPT, '--loader', 'json', '--bucket', spec.bucket, '--out', spec.out, '--now-ms', String(spec.nowMs), '--memory-limit', spec.memoryLimit];
  return measured(args, spec, { typescript: compiled === undefined, sampleMemoryMs: 50 }, childJson);
}

export function runReferenceModel(spec: RunSpec): Promise<RunOutcome> {
  const args = ['bench/support/reference-model.ts', '--bucket', spec.bucket, '--out', spec.out, '--now-ms', String(spec.nowMs)];
  return measured(args, spec, { typescript: true, sampleMemoryMs: 50 }, childJson);
}
