import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import { hostname } from 'node:os';
import * as path from 'node:path';
import lockfile from 'proper-lockfile';
import type { Logger } from 'pino';

export const SHIPPER_LOCK = '.shipper.lock';
const PID_FILE = '.shipper.lock.pid';

/** Another shipper already runs on this ledger directory. */
export class ShipperLockedError extends Error {
  constructor(
    readonly ledgerDir: string,
    readonly holderPid: number | undefined,
  ) {
    super(
      `another shipper is already running on ${ledgerDir}${holderPid ? ` (pid ${holderPid})` : ''}: only one shipper per ledger directory may run. ` +
        `Stop it first, or point this one at another --ledger-dir.`,
    );
    this.name = 'ShipperLockedError';
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readHolder(ledgerDir: string): { pid: number; host: string } | undefined {
  try {
    const v = JSON.parse(fs.readFileSync(path.join(ledgerDir, PID_FILE), 'utf8')) as { pid?: unknown; host?: unknown };
    return typeof v.pid === 'number' && typeof v.host === 'string' ? { pid: v.pid, host: v.host } : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Takes the one-shipper-per-directory lock (proper-lockfile on `<dir>/.shipper.lock`). A shipper
 * killed with SIGKILL leaves the lock behind for `stale` ms; since the ledger is local, the holder's
 * pid (written beside the lock) tells us at once whether it is dead, so a restart after a crash
 * does not have to wait. `onCompromised` fires if the lock is lost while running.
 */
export async function acquireShipperLock(ledgerDir: string, log: Logger, onCompromised: (err: Error) => void): Promise<() => Promise<void>> {
  const opts = {
    lockfilePath: path.join(ledgerDir, SHIPPER_LOCK),
    realpath: false,
    stale: 10_000,
    retries: 0,
    onCompromised,
  };
  const lockOnce = async (wait: boolean): Promise<() => Promise<void>> => {
    try {
      // Waiting is only for a lock with no known holder: proper-lockfile frees it once stale.
      return await lockfile.lock(ledgerDir, wait ? { ...opts, retries: { retries: 12, minTimeout: 1000, maxTimeout: 1000 } } : opts);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ELOCKED') throw new ShipperLockedError(ledgerDir, readHolder(ledgerDir)?.pid);
      throw err;
    }
  };
  let release: () => Promise<void>;
  try {
    release = await lockfile.lock(ledgerDir, opts);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ELOCKED') throw err;
    const holder = readHolder(ledgerDir);
    if (holder && (holder.host !== hostname() || alive(holder.pid))) throw new ShipperLockedError(ledgerDir, holder.pid);
    if (!holder) {
      // Killed between taking the lock and writing its pid: wait until the lock goes stale.
      log.warn({ lock: opts.lockfilePath }, 'shipper: the lock is held by an unknown process; waiting up to 12 s for it to go stale');
      release = await lockOnce(true);
    } else {
      // The pid file names a dead process. A shipper that just took the lock writes its own pid
      // within microseconds; look again a moment later before taking the lock over.
      await new Promise((r) => setTimeout(r, 250));
      const again = readHolder(ledgerDir);
      if (!again || again.pid !== holder.pid || again.host !== holder.host) throw new ShipperLockedError(ledgerDir, again?.pid);
      log.warn({ pid: holder.pid }, 'shipper: the previous shipper died without releasing its lock; taking it over');
      await fsp.rm(opts.lockfilePath, { recursive: true, force: true });
      release = await lockOnce(false);
    }
  }
  const pidFile = path.join(ledgerDir, PID_FILE);
  fs.writeFileSync(`${pidFile}.${process.pid}.tmp`, JSON.stringify({ pid: process.pid, host: hostname() }), { mode: 0o600 });
  fs.renameSync(`${pidFile}.${process.pid}.tmp`, pidFile);
  return async () => {
    await fsp.unlink(path.join(ledgerDir, PID_FILE)).catch(() => {});
    await release().catch(() => {});
  };
}

/** Whether some shipper holds the lock now (for `metering status`). */
export async function shipperRunning(ledgerDir: string): Promise<{ running: boolean; pid?: number }> {
  const locked = await lockfile.check(ledgerDir, { lockfilePath: path.join(ledgerDir, SHIPPER_LOCK), realpath: false, stale: 10_000 }).catch(() => false);
  const holder = readHolder(ledgerDir);
  if (!locked) return { running: false };
  if (holder && holder.host === hostname() && !alive(holder.pid)) return { running: false };
  return holder ? { running: true, pid: holder.pid } : { running: true };
}
