import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Starts, stops and probes the process that runs a VM (the VMM: cloud-hypervisor, firecracker...).
 * The manager only ever asks "is this pid alive?": a VM whose record says running but whose VMM is
 * dead has crashed, and that is the only proof that lets it close the compute interval as a crash.
 */
export interface VmmDriver {
  readonly kind: 'process' | 'simulated';
  /** Starts a VMM for the VM and returns its pid. */
  launch(vmId: string): Promise<number>;
  isAlive(pid: number): boolean;
  /** Asks the VMM to exit (SIGTERM, or SIGKILL when forced) and waits; true once it is gone. */
  shutdown(pid: number, options?: { force?: boolean; timeoutMs?: number }): Promise<boolean>;
  /** Kills the VMM without telling anyone (what a crash looks like to the manager); resolves once it is gone. */
  crash(pid: number): Promise<void>;
}

/** A zombie (exited, not yet reaped by its parent) still answers kill(pid, 0): it is dead all the same. */
function isZombie(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Format: "pid (comm) S ...": the state follows the last ')' since comm may contain one.
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z';
  } catch {
    return false;
  }
}

function signalAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return !isZombie(pid);
  } catch (err) {
    // EPERM: it exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Default stand-in VMM: a long-lived node process that exits on SIGTERM. */
export const DEFAULT_VMM_SCRIPT = 'setInterval(() => {}, 1 << 30); process.title = "fake-vmm";';

/**
 * Real processes: each VM gets a detached child process that outlives the CLI that started it, like a
 * VMM daemonized by a manager. Liveness is `kill(pid, 0)`.
 */
export class ProcessVmm implements VmmDriver {
  readonly kind = 'process' as const;

  /** `script` is the JavaScript the stand-in VMM runs (tests pass one that ignores SIGTERM). */
  constructor(private readonly script: string = DEFAULT_VMM_SCRIPT) {}

  /** Resolves once the VMM says it is ready (its handlers are installed), as a real manager waits for the API socket. */
  async launch(vmId: string): Promise<number> {
    const child = spawn(process.execPath, ['-e', `${this.script}\nprocess.stdout.write('ready\\n');`, '--', `vmm:${vmId}`], {
      detached: true,
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    try {
      await new Promise<void>((resolve, reject) => {
        child.once('error', reject);
        child.once('exit', (code, signal) => reject(new Error(`VMM exited during start (${signal ?? `code ${code}`})`)));
        child.stdout!.once('data', () => resolve());
      });
    } finally {
      child.removeAllListeners();
    }
    child.stdout!.destroy();
    child.unref();
    return child.pid!;
  }

  isAlive(pid: number): boolean {
    return signalAlive(pid);
  }

  async shutdown(pid: number, options: { force?: boolean; timeoutMs?: number } = {}): Promise<boolean> {
    try {
      process.kill(pid, options.force ? 'SIGKILL' : 'SIGTERM');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ESRCH') return true;
      throw err;
    }
    const deadline = Date.now() + (options.timeoutMs ?? 3_000);
    while (Date.now() < deadline) {
      if (!signalAlive(pid)) return true;
      await sleep(20);
    }
    return !signalAlive(pid);
  }

  async crash(pid: number): Promise<void> {
    await this.shutdown(pid, { force: true, timeoutMs: 5_000 });
  }
}

/**
 * Simulated VMMs for demos: a VMM "process" is a marker file `<dir>/<pid>`; alive while it exists.
 * Nothing keeps running after the demo, and a crash is just the file disappearing. A marker holding
 * "stuck" ignores a polite shutdown, like a VMM that hangs on SIGTERM.
 */
export class SimulatedVmm implements VmmDriver {
  readonly kind = 'simulated' as const;

  constructor(readonly dir: string) {}

  async launch(vmId: string): Promise<number> {
    fs.mkdirSync(this.dir, { recursive: true });
    // Simulated pids live far above real ones so they are never mistaken for a process.
    for (;;) {
      const pid = 10_000_000 + Math.floor(Math.random() * 89_999_999);
      try {
        fs.writeFileSync(path.join(this.dir, String(pid)), `${vmId}\n`, { flag: 'wx' });
        return pid;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
    }
  }

  isAlive(pid: number): boolean {
    return fs.existsSync(path.join(this.dir, String(pid)));
  }

  async shutdown(pid: number, options: { force?: boolean } = {}): Promise<boolean> {
    const marker = path.join(this.dir, String(pid));
    let text: string;
    try {
      text = fs.readFileSync(marker, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return true;
      throw err;
    }
    if (text.includes('stuck') && !options.force) return false;
    fs.rmSync(marker, { force: true });
    return true;
  }

  async crash(pid: number): Promise<void> {
    fs.rmSync(path.join(this.dir, String(pid)), { force: true });
  }

  /** Makes a simulated VMM ignore polite shutdowns (demo of the error state). */
  makeStuck(pid: number): void {
    fs.appendFileSync(path.join(this.dir, String(pid)), 'stuck\n');
  }
}
