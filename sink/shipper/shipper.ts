/**
 * The shipper's public API: `shipOnce` (drain and return) and `startShipper` (run until stopped),
 * both holding the one-shipper-per-directory lock around a `Shipper`.
 */
import { errorText } from './retry.js';
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

async function withLock<T>(shipper: Shipper, onLost: (err: Error) => void, fn: () => Promise<T>): Promise<T> {
  shipper.checkLedgerDir();
  const release = await acquireShipperLock(shipper.o.ledgerDir, shipper.o.log, onLost);
  try {
    return await fn();
  } finally {
    await release();
  }
}

/**
 * Drains everything present (every complete line of every segment), writes the node progress
 * object and returns. For cron jobs, tests and demos.
 */
export async function shipOnce(options: ShipperOptions): Promise<ShipOnceResult> {
  const shipper = new Shipper({ ...options, watch: false });
  let lost: Error | undefined;
  return withLock(
    shipper,
    (err) => {
      lost = err;
      shipper.stop.stop();
    },
    async () => {
      await shipper.init();
      // A replaced segment or a late append can need another pass; each pass makes progress.
      for (let pass = 0; pass < 10 && !(await shipper.cycle()) && !shipper.stop.isStopped; pass++);
      if (lost) throw new Error(`shipper lock lost: ${lost.message}`);
      if (shipper.segmentErrors.size > 0) {
        await shipper.maybeWriteProgress(false, true);
        const list = [...shipper.segmentErrors].map(([s, e]) => `${s}: ${e}`).join('; ');
        throw new Error(`could not ship ${shipper.segmentErrors.size} segment(s): ${list}`);
      }
      await shipper.maybeWriteProgress(true);
      await shipper.writeStatusFile();
      return { status: shipper.status() };
    },
  );
}

/**
 * Starts the shipper daemon: ships continuously until `stop()`. Rejects if another shipper holds
 * the directory's lock.
 */
export async function startShipper(options: ShipperOptions): Promise<RunningShipper> {
  const shipper = new Shipper(options);
  const o = shipper.o;
  let lost: Error | undefined;
  shipper.checkLedgerDir();
  const release = await acquireShipperLock(o.ledgerDir, o.log, (err) => {
    lost = err;
    o.log.fatal({ err: err.message }, 'shipper: lost the shipper lock (another shipper may run now); stopping');
    shipper.stop.stop();
  });
  try {
    await shipper.init();
  } catch (err) {
    await release();
    throw err;
  }
  const wakeup = new Wakeup();
  const watcher = o.watch ? watchLedgerDir(o.ledgerDir, wakeup, o.log) : undefined;
  const stopWake = (): void => wakeup.poke();
  o.log.info({ ledgerDir: o.ledgerDir, destination: destinationLabel(o.destination.description, o.prefix), node: o.node, stateDir: o.stateDir }, 'shipper: started');

  void shipper.refreshStatus(); // `metering status` has figures even if the first pass blocks
  const statusTimer = setInterval(() => void shipper.refreshStatus(), Math.min(1000, o.progressMs));
  statusTimer.unref();
  const loop = async (): Promise<void> => {
    try {
      while (!shipper.stop.isStopped) {
        try {
          await shipper.cycle();
        } catch (err) {
          shipper.noteError(err);
          o.log.error({ err: errorText(err) }, 'shipper: cycle failed; retrying on the next rescan');
        }
        if (shipper.stop.isStopped) break;
        const byEvent = await wakeup.wait(Math.min(o.rescanMs, o.progressMs));
        // Gather: many writers appending in bursts still make few, large objects.
        if (byEvent && o.batchMs > 0) await shipper.stop.sleep(o.batchMs);
      }
      // One last report (a single attempt: we were asked to stop, not to wait for an outage).
      await shipper.maybeWriteProgress(false, true);
      await shipper.writeStatusFile();
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
    status: () => shipper.status(),
    async stop() {
      shipper.stop.stop();
      stopWake();
      await done.catch(() => {});
    },
  };
}
