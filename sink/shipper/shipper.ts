/**
 * The shipper's public API: `shipOnce` (drain and return) and `startShipper` (run until stopped),
 * both holding the one-shipper-per-directory lock around a `Shipper`.
 */
import { errorText, GaveUpError } from '../destinations/retrying.js';
import { Shipper } from './ledger-shipper.js';
import { acquireShipperLock } from './lock.js';
import type { ShipperOptions } from './options.js';
import { destinationLabel, type ShipperStatus } from './status.js';
import { watchLedgerDir, Wakeup } from './wakeup.js';

export type { ShipperOptions, ShippedEvent } from './options.js';

export interface ShipOnceResult {
  status: ShipperStatus;
}

export interface RunningShipper {
  /** Asks to stop: the upload in flight completes, positions and progress are saved. */
  stop(): Promise<void>;
  /** Resolves when the shipper has stopped; rejects if it failed to start or lost its lock. */
  readonly done: Promise<void>;
  status(): ShipperStatus;
}

/** shipOnce could not ship everything: `notShipped` names each file and the bytes left in it. */
export class ShipOnceError extends Error {
  constructor(
    message: string,
    readonly notShipped: string[],
  ) {
    super(notShipped.length > 0 ? `${message}. Not shipped: ${notShipped.join('; ')}` : message);
    this.name = 'ShipOnceError';
  }
}

function missingDirError(dir: string): Error {
  return new Error(`ledger directory ${dir} does not exist (is the recorder writing somewhere else? see --ledger-dir)`);
}

/**
 * Drains everything present (every complete line of every segment), writes the node progress
 * object and returns. For cron jobs, tests and demos. Rejects with a ShipOnceError naming what was
 * not shipped when the destination keeps failing for `maxRetryMs` (default 5 min), at once on an
 * error retrying cannot fix (403, missing bucket), or when a segment cannot be read.
 */
export async function shipOnce(options: ShipperOptions): Promise<ShipOnceResult> {
  const shipper = new Shipper({ ...options, watch: false }, 'once');
  if (!shipper.ledgerDirExists()) throw missingDirError(shipper.o.ledgerDir);
  let lost: Error | undefined;
  const release = await acquireShipperLock(shipper.o.ledgerDir, shipper.o.log, (err) => {
    lost = err;
    shipper.stop.stop();
  });
  try {
    await shipper.init();
    try {
      // A replaced segment or a late append can need another pass; each pass makes progress.
      for (let pass = 0; pass < 10 && !(await shipper.cycle()) && !shipper.stop.isStopped; pass++);
      if (lost) throw new Error(`shipper lock lost: ${lost.message}`);
      // Everything else is shipped; a file that could not be (unreadable, or a FIFO or symlink
      // named like a segment, never opened) makes the run fail, naming it.
      const failed = [...shipper.segmentErrors].map(([s, e]) => `${s}: ${e}`).concat(shipper.telemetry.skippedFiles.map((s) => `${s.name}: ${s.reason}`));
      if (failed.length > 0) throw new ShipOnceError(`could not ship ${failed.length} segment(s): ${failed.join('; ')}`, await shipper.notShipped());
      await shipper.telemetry.maybeWriteProgress(shipper.destination, true);
    } catch (err) {
      if (!(err instanceof GaveUpError) && !(err instanceof ShipOnceError)) throw err;
      await shipper.refreshStatus(); // status.json shows the backlog left behind
      await shipper.telemetry.maybeWriteProgress(shipper.destination, false, true).catch(() => {});
      if (err instanceof ShipOnceError) throw err;
      throw new ShipOnceError(`gave up on the destination ${shipper.o.destination.description}: ${err.message}`, await shipper.notShipped());
    }
    await shipper.telemetry.writeStatusFile();
    return { status: shipper.telemetry.status() };
  } finally {
    await release();
  }
}

/**
 * Starts the shipper daemon: ships continuously until `stop()`. Rejects if another shipper holds
 * the directory's lock. A ledger directory that does not exist yet (the shipper started before the
 * manager) is waited for, with one warning: `done` rejects later if the lock is taken by then.
 */
export async function startShipper(options: ShipperOptions): Promise<RunningShipper> {
  const shipper = new Shipper(options);
  const o = shipper.o;
  let lost: Error | undefined;
  const onLost = (err: Error): void => {
    lost = err;
    o.log.fatal({ err: err.message }, 'shipper: lost the shipper lock (another shipper may run now); stopping');
    shipper.stop.stop();
  };
  const takeLock = async (): Promise<() => Promise<void>> => {
    const release = await acquireShipperLock(o.ledgerDir, o.log, onLost);
    try {
      await shipper.init();
    } catch (err) {
      await release();
      throw err;
    }
    return release;
  };
  // Usually the directory is there: a second shipper is refused right away (exit 3 in the CLI).
  let release = shipper.ledgerDirExists() ? await takeLock() : undefined;
  const wakeup = new Wakeup();
  const stopWake = (): void => wakeup.poke();
  o.log.info({ ledgerDir: o.ledgerDir, destination: destinationLabel(o.destination.description, o.prefix), node: o.node, stateDir: o.stateDir }, release ? 'shipper: started' : 'shipper: started; waiting for the ledger directory');

  const loop = async (): Promise<void> => {
    if (!release) {
      o.log.warn({ ledgerDir: o.ledgerDir, checkEveryMs: o.rescanMs }, 'shipper: the ledger directory does not exist yet; waiting for the recorder to create it (see --ledger-dir if it writes elsewhere)');
      while (!shipper.ledgerDirExists()) {
        if (await shipper.stop.sleep(o.rescanMs)) return;
      }
      release = await takeLock();
      o.log.info({ ledgerDir: o.ledgerDir }, 'shipper: the ledger directory appeared; shipping');
    }
    const watcher = o.watch ? watchLedgerDir(o.ledgerDir, wakeup, o.log) : undefined;
    void shipper.refreshStatus(); // `metering status` has figures even if the first pass blocks
    const statusTimer = setInterval(() => void shipper.refreshStatus(), Math.min(1000, o.progressMs));
    statusTimer.unref();
    try {
      while (!shipper.stop.isStopped) {
        try {
          await shipper.cycle();
        } catch (err) {
          shipper.telemetry.error(err);
          o.log.error({ err: errorText(err) }, 'shipper: cycle failed; retrying on the next rescan');
        }
        if (shipper.stop.isStopped) break;
        const byEvent = await wakeup.wait(Math.min(o.rescanMs, o.progressMs));
        // Gather: many writers appending in bursts still make few, large objects.
        if (byEvent && o.batchMs > 0) await shipper.stop.sleep(o.batchMs);
      }
      // One last report (a single attempt: we were asked to stop, not to wait for an outage).
      await shipper.telemetry.maybeWriteProgress(shipper.destination, false, true);
      await shipper.telemetry.writeStatusFile();
    } finally {
      clearInterval(statusTimer);
      await watcher?.close();
      await release();
      o.log.info({}, 'shipper: stopped');
    }
    if (lost) throw new Error(`shipper lock lost: ${lost.message}`);
  };
  const done = loop();
  return {
    done,
    status: () => shipper.telemetry.status(),
    async stop() {
      shipper.stop.stop();
      stopWake();
      await done.catch(() => {});
    },
  };
}
