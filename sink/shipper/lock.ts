/**
 * One shipper per ledger directory.
 *
 * On Linux the lock is a listening Unix socket in the abstract namespace, named after the ledger
 * directory's real path. bind() is atomic and the kernel releases the name the instant its process
 * dies, SIGKILL included: there is no stale lock to judge and no take-over to race. (A lock file
 * must be taken over after a crash, and two starters that both saw the dead holder could both take
 * it: 5 of 50 tries did with the pid-file scheme this replaces.) The abstract namespace belongs to
 * the network namespace, so every shipper of one directory must share it: the host, or containers
 * of one pod. A connection to the socket answers with the holder's pid, for messages and status.
 *
 * Beside it, and alone where there is no abstract namespace, a proper-lockfile lock on
 * `<dir>/.shipper.lock` with the holder's pid in `.shipper.lock.pid`. On Linux it only keeps out an
 * older shipper version (which knows no socket); whoever holds the socket may take the file lock
 * over, since no other current shipper can be racing for it.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as net from 'node:net';
import { hostname } from 'node:os';
import * as path from 'node:path';
import lockfile from 'proper-lockfile';
import type { Logger } from 'pino';
import { processAlive } from '../process-alive.js';

export const SHIPPER_LOCK = '.shipper.lock';
const PID_FILE = '.shipper.lock.pid';
const FILE_LOCK_STALE_MS = 10_000;

/** Where the kernel-released lock exists (Linux: abstract Unix sockets). */
export const KERNEL_LOCK_SUPPORTED = process.platform === 'linux';

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


function readHolder(ledgerDir: string): { pid: number; host: string } | undefined {
  try {
    const v = JSON.parse(fs.readFileSync(path.join(ledgerDir, PID_FILE), 'utf8')) as { pid?: unknown; host?: unknown };
    return typeof v.pid === 'number' && typeof v.host === 'string' ? { pid: v.pid, host: v.host } : undefined;
  } catch {
    return undefined;
  }
}

/** The pid in the pid file if that process still runs here (a dead one's pid would mislead). */
function liveHolderPid(ledgerDir: string): number | undefined {
  const holder = readHolder(ledgerDir);
  return holder && holder.host === hostname() && processAlive(holder.pid) ? holder.pid : undefined;
}

/** The abstract socket name for a ledger directory (same directory, same name, however it is spelled). */
export function shipperSocketName(ledgerDir: string): string {
  let real = path.resolve(ledgerDir);
  try {
    real = fs.realpathSync(real);
  } catch {
    // Not there (yet): the resolved path is the best name we have.
  }
  return `\0metering-ledger/shipper/${createHash('sha256').update(real).digest('hex').slice(0, 40)}`;
}

/** Binds the directory's abstract socket; undefined when another process holds it. */
async function bindSocket(ledgerDir: string): Promise<net.Server | undefined> {
  const server = net.createServer((conn) => {
    conn.on('error', () => {});
    conn.end(JSON.stringify({ pid: process.pid }) + '\n');
  });
  server.on('error', () => {});
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ path: shipperSocketName(ledgerDir), exclusive: true }, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') return undefined;
    throw err;
  }
  // Holding the lock must not keep a finished process alive; the name lives as long as the process.
  server.unref();
  return server;
}

/** Asks the socket's holder for its pid: undefined when nobody listens. */
async function socketHolder(ledgerDir: string, timeoutMs = 10_000): Promise<{ pid?: number } | undefined> {
  return new Promise((resolve) => {
    let text = '';
    let settled = false;
    const finish = (v: { pid?: number } | undefined): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(v);
    };
    const sock = net.connect({ path: shipperSocketName(ledgerDir) });
    const timer = setTimeout(() => finish({}), timeoutMs); // listening but slow to answer: still held
    sock.on('data', (d: Buffer) => (text += d.toString()));
    sock.on('end', () => {
      try {
        const v = JSON.parse(text) as { pid?: unknown };
        finish(typeof v.pid === 'number' ? { pid: v.pid } : {});
      } catch {
        finish({});
      }
    });
    sock.on('error', (err: NodeJS.ErrnoException) => finish(err.code === 'ECONNREFUSED' || err.code === 'ENOENT' ? undefined : {}));
  });
}

function fileLockOptions(ledgerDir: string, onCompromised: (err: Error) => void): Parameters<typeof lockfile.lock>[1] {
  return { lockfilePath: path.join(ledgerDir, SHIPPER_LOCK), realpath: false, stale: FILE_LOCK_STALE_MS, retries: 0, onCompromised };
}

/**
 * The file lock, for a process that holds the socket: a holder that is alive (an older shipper
 * version) keeps it; a dead or unknown one is taken over at once.
 */
async function takeFileLockBehindSocket(ledgerDir: string, log: Logger, onCompromised: (err: Error) => void): Promise<() => Promise<void>> {
  const opts = fileLockOptions(ledgerDir, onCompromised);
  try {
    return await lockfile.lock(ledgerDir, opts);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ELOCKED') throw err;
  }
  const holder = readHolder(ledgerDir);
  if (holder && holder.pid !== process.pid && (holder.host !== hostname() || processAlive(holder.pid))) throw new ShipperLockedError(ledgerDir, holder.pid);
  log.warn({ pid: holder?.pid }, 'shipper: the previous shipper died without releasing its lock; taking it over');
  await fsp.rm(path.join(ledgerDir, SHIPPER_LOCK), { recursive: true, force: true });
  return lockfile.lock(ledgerDir, opts);
}

/** The file lock alone (no abstract namespace): take-over after a crash is judged by the pid file. */
async function takeFileLockAlone(ledgerDir: string, log: Logger, onCompromised: (err: Error) => void): Promise<() => Promise<void>> {
  const opts = fileLockOptions(ledgerDir, onCompromised);
  const lockOnce = async (wait: boolean): Promise<() => Promise<void>> => {
    try {
      // Waiting is only for a lock with no known holder: proper-lockfile frees it once stale.
      return await lockfile.lock(ledgerDir, wait ? { ...opts, retries: { retries: 12, minTimeout: 1000, maxTimeout: 1000 } } : opts);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ELOCKED') throw new ShipperLockedError(ledgerDir, readHolder(ledgerDir)?.pid);
      throw err;
    }
  };
  try {
    return await lockfile.lock(ledgerDir, opts);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ELOCKED') throw err;
  }
  const holder = readHolder(ledgerDir);
  if (holder && (holder.host !== hostname() || processAlive(holder.pid))) throw new ShipperLockedError(ledgerDir, holder.pid);
  if (!holder) {
    log.warn({ lock: opts?.lockfilePath }, 'shipper: the lock is held by an unknown process; waiting up to 12 s for it to go stale');
    return lockOnce(true);
  }
  // Best effort without a kernel lock: a shipper that just took the lock writes its pid within
  // microseconds; look again a moment later before taking it over.
  await new Promise((r) => setTimeout(r, 250));
  const again = readHolder(ledgerDir);
  if (!again || again.pid !== holder.pid || again.host !== holder.host) throw new ShipperLockedError(ledgerDir, again?.pid);
  log.warn({ pid: holder.pid }, 'shipper: the previous shipper died without releasing its lock; taking it over');
  await fsp.rm(path.join(ledgerDir, SHIPPER_LOCK), { recursive: true, force: true });
  return lockOnce(false);
}

/**
 * Takes the one-shipper-per-directory lock, or throws ShipperLockedError naming the holder.
 * `onCompromised` fires if the file lock is lost while running (removed by hand, disk trouble).
 * Returns the release function.
 */
export async function acquireShipperLock(ledgerDir: string, log: Logger, onCompromised: (err: Error) => void): Promise<() => Promise<void>> {
  let server: net.Server | undefined;
  let releaseFile: () => Promise<void>;
  if (KERNEL_LOCK_SUPPORTED) {
    server = await bindSocket(ledgerDir);
    if (!server) throw new ShipperLockedError(ledgerDir, (await socketHolder(ledgerDir))?.pid ?? liveHolderPid(ledgerDir));
    try {
      releaseFile = await takeFileLockBehindSocket(ledgerDir, log, onCompromised);
    } catch (err) {
      server.close();
      throw err;
    }
  } else {
    releaseFile = await takeFileLockAlone(ledgerDir, log, onCompromised);
  }
  const pidFile = path.join(ledgerDir, PID_FILE);
  fs.writeFileSync(`${pidFile}.${process.pid}.tmp`, JSON.stringify({ pid: process.pid, host: hostname() }), { mode: 0o600 });
  fs.renameSync(`${pidFile}.${process.pid}.tmp`, pidFile);
  return async () => {
    await fsp.unlink(pidFile).catch(() => {});
    await releaseFile().catch(() => {});
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  };
}

/** Whether some shipper holds the lock now (for `metering status`). */
export async function shipperRunning(ledgerDir: string): Promise<{ running: boolean; pid?: number }> {
  if (KERNEL_LOCK_SUPPORTED) {
    const viaSocket = await socketHolder(ledgerDir);
    if (viaSocket) return viaSocket.pid !== undefined ? { running: true, pid: viaSocket.pid } : { running: true };
  }
  // No socket holder: maybe an older shipper version (file lock only), or a platform without one.
  const locked = await lockfile.check(ledgerDir, { lockfilePath: path.join(ledgerDir, SHIPPER_LOCK), realpath: false, stale: FILE_LOCK_STALE_MS }).catch(() => false);
  const holder = readHolder(ledgerDir);
  if (!locked) return { running: false };
  if (holder && holder.host === hostname() && !processAlive(holder.pid)) return { running: false };
  return holder ? { running: true, pid: holder.pid } : { running: true };
}
