import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { ACTIVE_LINK, DEFAULT_MAX_LINE_BYTES } from '../../src/index.js';
import { writeFileAtomic } from '../atomic-file.js';
import { scanLedgerDir, type SkippedFile } from './ledger-files.js';
import { shipperRunning } from './lock.js';
import { emittedAtOf } from './oldest-unshipped.js';
import { readPositions } from './positions.js';
import { verifiedShipped } from './segment-identity.js';

export const STATUS_FILE = 'status.json';
export const DEFAULT_STATE_SUBDIR = '.shipper';

export interface ShipperCounters {
  objects_uploaded: number;
  bytes_uploaded: number;
  ledger_lines: number;
  quarantined_lines: number;
  /** Failed destination calls (each retried). */
  upload_errors: number;
  /** Segments found replaced or truncated and shipped again under a new generation. */
  generations_bumped: number;
  segments_deleted: number;
}

export function zeroCounters(): ShipperCounters {
  return { objects_uploaded: 0, bytes_uploaded: 0, ledger_lines: 0, quarantined_lines: 0, upload_errors: 0, generations_bumped: 0, segments_deleted: 0 };
}

/**
 * Where the shipper uploads, as the user wrote it: the destination's description with the object
 * prefix (`gs://bucket/prefix`, endpoint note kept after it), so status shows the full location.
 */
export function destinationLabel(description: string, prefix: string): string {
  if (!prefix) return description;
  const [location, ...rest] = description.split(' ');
  return [`${location!.replace(/\/+$/, '')}/${prefix}`, ...rest].join(' ');
}

/** Written by the running shipper to `<state-dir>/status.json` after every cycle. */
export interface ShipperStatus {
  v: 1;
  pid: number;
  node: string;
  destination: string;
  ledger_dir: string;
  started_at: string;
  updated_at: string;
  /** Bytes in the ledger not yet confirmed stored. */
  backlog_bytes: number;
  /** emitted_at of the oldest entry not yet shipped; null when nothing is waiting. */
  oldest_unshipped_at: string | null;
  last_success_at: string | null;
  last_error: { at: string; message: string; hint?: string } | null;
  counters: ShipperCounters;
  /** Files named like ledger files that are not shipped (FIFOs, symlinks, ...), with why. */
  skipped?: SkippedFile[];
}

export function defaultStateDir(ledgerDir: string): string {
  return path.join(ledgerDir, DEFAULT_STATE_SUBDIR);
}

export async function writeStatus(stateDir: string, status: ShipperStatus): Promise<void> {
  // Not fsynced: it is a report, and the next cycle rewrites it anyway.
  await writeFileAtomic(path.join(stateDir, STATUS_FILE), JSON.stringify(status, null, 2) + '\n', { durable: false });
}

export interface SegmentReport {
  /** Segment name (a plain ledger.jsonl: the name reserved for it, or "ledger.jsonl" before that). */
  name: string;
  size: number;
  shipped: number;
  active: boolean;
  sealed: boolean;
  /** A plain-file ledger.jsonl (not a segment yet). */
  plain?: boolean;
}

/** What `metering status` shows: the shipper's last report plus figures computed from the files now. */
export interface ShipperStatusReport {
  ledger_dir: string;
  state_dir: string;
  running: boolean;
  pid?: number;
  /** Backlog computed now from the position store and the segment sizes (works with no shipper running). */
  backlog_bytes: number;
  /** emitted_at of the oldest entry not yet shipped, read from the ledger now; null when none. */
  oldest_unshipped_at: string | null;
  segments: SegmentReport[];
  /** Files named like ledger files that are not shipped (FIFOs, symlinks, ...). */
  skipped: SkippedFile[];
  /** The running (or last) shipper's own report, if it ever wrote one. */
  reported: ShipperStatus | null;
  /** When the position store is unreadable: the shipper will reconcile with the destination. */
  problem?: string;
}

/** Reads a ledger directory's shipping status without touching the destination. */
export async function readShipperStatus(ledgerDir: string, stateDir = defaultStateDir(ledgerDir)): Promise<ShipperStatusReport> {
  if (!fs.existsSync(ledgerDir)) throw new Error(`ledger directory ${ledgerDir} does not exist`);
  const { state, problem } = await readPositions(stateDir);
  let reported: ShipperStatus | null = null;
  try {
    reported = JSON.parse(await fsp.readFile(path.join(stateDir, STATUS_FILE), 'utf8')) as ShipperStatus;
  } catch {
    reported = null;
  }
  const scan = scanLedgerDir(ledgerDir, false);
  const segments: SegmentReport[] = [];
  let backlog = 0;
  let oldest: string | null = null;
  const files = scan.files.map((f) => ({ name: f.name, path: f.path, active: f.active, plain: f.plain }));
  // A plain ledger.jsonl no shipper has seen yet: all of it is backlog.
  if (scan.unnamedPlain) files.push({ name: ACTIVE_LINK, path: path.join(ledgerDir, ACTIVE_LINK), active: true, plain: true });
  for (const f of files) {
    const st = fs.lstatSync(f.path, { throwIfNoEntry: false });
    if (!st?.isFile()) continue;
    const pos = state?.segments[f.name];
    const shipped = await verifiedShipped(pos, f.path, st);
    backlog += st.size - shipped;
    if (oldest === null && st.size > shipped) oldest = (await emittedAtOf(f.path, shipped, DEFAULT_MAX_LINE_BYTES)) ?? null;
    segments.push({ name: f.name, size: st.size, shipped, active: f.active, sealed: pos?.sealed ?? false, ...(f.plain ? { plain: true } : {}) });
  }
  const lock = await shipperRunning(ledgerDir);
  return {
    ledger_dir: ledgerDir,
    state_dir: stateDir,
    running: lock.running,
    ...(lock.pid !== undefined ? { pid: lock.pid } : {}),
    backlog_bytes: backlog,
    oldest_unshipped_at: oldest,
    segments,
    skipped: scan.skipped,
    reported,
    ...(problem ? { problem } : {}),
  };
}
