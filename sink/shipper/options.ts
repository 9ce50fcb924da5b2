import { hostname } from 'node:os';
import * as path from 'node:path';
import { pino, type Logger } from 'pino';
import { DEFAULT_MAX_LINE_BYTES } from '../../src/index.js';
import type { Destination } from '../destinations/destination.js';
import { assertSafeNode, normalizePrefix } from '../layout.js';
import { DEFAULT_RETRY, type RetryPolicy } from '../destinations/retrying.js';
import { defaultStateDir } from './status.js';

/** Every default of the shipper, in one place: the CLI's flag defaults and help come from here. */
export const SHIPPER_DEFAULTS = {
  batchBytes: 8 * 1024 * 1024,
  batchMs: 1000,
  rescanMs: 2000,
  progressMs: 5000,
  retentionMs: 7 * 86_400_000,
  maxLineBytes: DEFAULT_MAX_LINE_BYTES,
  sealQuietMs: 2000,
  /** `--once` gives up after the destination failed this long without a success (5 min). */
  maxRetryMs: 5 * 60_000,
  retry: DEFAULT_RETRY,
} as const;

export interface ShipperOptions {
  ledgerDir: string;
  destination: Destination;
  /** Object-name prefix inside the destination (from `gs://bucket/<prefix>`). Default "". */
  prefix?: string;
  /** Node id in object names and the progress object. Default: the hostname. */
  node?: string;
  /** Where positions.json and status.json live. Default `<ledgerDir>/.shipper`. */
  stateDir?: string;
  /** A batch (object) covers at most this many ledger bytes. Default 8 MiB. */
  batchBytes?: number;
  /** After a change, wait this long to gather more lines into the batch. Default 1000 ms. */
  batchMs?: number;
  gzip?: boolean;
  /** Safety-net rescan interval (file events can be missed). Default 2000 ms. */
  rescanMs?: number;
  /** Rewrite the node progress object at least this often, even when idle. Default 5000 ms. */
  progressMs?: number;
  /** Delete fully shipped, sealed segments this long after their last write. Default 7 days. */
  retentionMs?: number;
  maxLineBytes?: number;
  /**
   * A non-active segment counts as finished (its torn tail shipped to quarantine, then sealed) only
   * after this long without writes: writers may append to a just-rotated segment for ~20 ms.
   */
  sealQuietMs?: number;
  retry?: Partial<RetryPolicy>;
  /**
   * shipOnce only: give up (and reject, naming what was not shipped) once the destination has
   * failed this long without a success; permanent errors (403, missing bucket) at once. Default
   * 5 minutes. The daemon never gives up: the ledger is the buffer.
   */
  maxRetryMs?: number;
  logger?: Logger;
  /** Called as bytes are confirmed (progress bar). */
  onShipped?: (event: ShippedEvent) => void;
  /** Watch the directory for changes (daemon mode). Default true. */
  watch?: boolean;
}

export interface ShippedEvent {
  /** Bytes confirmed since the start of the current cycle. */
  shippedBytes: number;
  /** Backlog when the cycle started. */
  backlogAtStart: number;
}

/** Options with every default filled in and checked. */
export interface ResolvedShipperOptions {
  ledgerDir: string;
  destination: Destination;
  prefix: string;
  node: string;
  stateDir: string;
  batchBytes: number;
  batchMs: number;
  gzip: boolean;
  rescanMs: number;
  progressMs: number;
  retentionMs: number;
  maxLineBytes: number;
  sealQuietMs: number;
  retry: RetryPolicy;
  maxRetryMs: number;
  log: Logger;
  onShipped: ((e: ShippedEvent) => void) | undefined;
  watch: boolean;
}

export function resolveOptions(o: ShipperOptions): ResolvedShipperOptions {
  const positive = (name: string, v: number | undefined, dflt: number, min = 1): number => {
    const x = v ?? dflt;
    if (!Number.isFinite(x) || x < min) throw new Error(`${name} must be a number >= ${min} (got ${x})`);
    return x;
  };
  const ledgerDir = path.resolve(o.ledgerDir);
  return {
    ledgerDir,
    destination: o.destination,
    prefix: normalizePrefix(o.prefix ?? ''),
    node: assertSafeNode(o.node ?? hostname()),
    stateDir: path.resolve(o.stateDir ?? defaultStateDir(ledgerDir)),
    batchBytes: positive('batchBytes', o.batchBytes, SHIPPER_DEFAULTS.batchBytes),
    batchMs: positive('batchMs', o.batchMs, SHIPPER_DEFAULTS.batchMs, 0),
    gzip: o.gzip ?? false,
    rescanMs: positive('rescanMs', o.rescanMs, SHIPPER_DEFAULTS.rescanMs, 10),
    progressMs: positive('progressMs', o.progressMs, SHIPPER_DEFAULTS.progressMs, 10),
    retentionMs: positive('retentionMs', o.retentionMs, SHIPPER_DEFAULTS.retentionMs, 0),
    maxLineBytes: positive('maxLineBytes', o.maxLineBytes, SHIPPER_DEFAULTS.maxLineBytes, 256),
    sealQuietMs: positive('sealQuietMs', o.sealQuietMs, SHIPPER_DEFAULTS.sealQuietMs, 0),
    retry: { ...SHIPPER_DEFAULTS.retry, ...o.retry },
    maxRetryMs: positive('maxRetryMs', o.maxRetryMs, SHIPPER_DEFAULTS.maxRetryMs, 0),
    log: o.logger ?? pino({ name: 'metering-shipper', level: process.env.METERING_LOG_LEVEL ?? 'info' }, pino.destination({ fd: 2, sync: true })),
    onShipped: o.onShipped,
    watch: o.watch ?? true,
  };
}
