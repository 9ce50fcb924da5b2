/**
 * What the shipper tells the world, kept apart from what it does: counters, last success and last
 * error, backlog and oldest unshipped entry, skipped files; rendered as `status.json` (also what
 * `--metrics-port` serves) and as the node progress object `<prefix>/nodes/<node>.json`.
 */
import * as fs from 'node:fs';
import type { Logger } from 'pino';
import { PermanentDestinationError } from '../destinations/destination.js';
import { errorText, StoppedError, type RetryingDestination } from '../destinations/retrying.js';
import { nodeProgressName, type NodeProgress } from '../layout.js';
import type { Batch } from './batch.js';
import type { LedgerFile, SkippedFile } from './ledger-files.js';
import { buildNodeProgress } from './node-progress.js';
import { emittedAtOf } from './oldest-unshipped.js';
import type { ResolvedShipperOptions } from './options.js';
import type { PositionStore } from './positions.js';
import { verifiedShipped } from './segment-identity.js';
import { destinationLabel, writeStatus, zeroCounters, type ShipperCounters, type ShipperStatus } from './status.js';

export class ShipperTelemetry {
  readonly counters: ShipperCounters = zeroCounters();
  private readonly startedAt = new Date().toISOString();
  private lastSuccessAt: string | null = null;
  private lastError: ShipperStatus['last_error'] = null;
  private backlog = 0;
  private oldestUnshippedAt: string | null = null;
  private lastShippedEmittedAt: string | undefined;
  private lastProgressAt = 0;
  private progressDirty = true;
  /** Files named like ledger files that are not shipped (FIFOs, symlinks, ...), with why. */
  private skipped: SkippedFile[] = [];
  private readonly warnedSkips = new Set<string>();
  /** Bytes confirmed in the current cycle and the backlog when it started (progress bar). */
  private cycleShipped = 0;
  private cycleBacklogAtStart = 0;

  constructor(
    private readonly o: ResolvedShipperOptions,
    private readonly store: PositionStore,
    private readonly log: Logger,
  ) {}

  /** Every failed destination call (RetryingDestination hook). */
  destinationError(err: unknown, permanent: boolean): void {
    this.counters.upload_errors++;
    this.lastError = { at: new Date().toISOString(), message: errorText(err), ...(permanent && err instanceof PermanentDestinationError ? { hint: err.hint } : {}) };
  }

  error(err: unknown, hint?: string): void {
    this.lastError = { at: new Date().toISOString(), message: errorText(err), ...(hint ? { hint } : {}) };
  }

  /** The files this pass did not ship, each warned about once (and shown in status as the last error). */
  noteSkipped(skipped: SkippedFile[]): void {
    this.skipped = skipped;
    for (const s of skipped) {
      const key = `${s.name}\0${s.reason}`;
      if (this.warnedSkips.has(key)) continue;
      this.warnedSkips.add(key);
      this.log.warn({ file: s.name, reason: s.reason }, 'shipper: not shipping a file of the ledger directory (not opened)');
      this.error(`${s.name}: ${s.reason}`, 'remove or rename it; only regular segment files are shipped');
    }
  }

  get skippedFiles(): readonly SkippedFile[] {
    return this.skipped;
  }

  startCycle(backlog: number): void {
    this.cycleShipped = 0;
    this.cycleBacklogAtStart = backlog;
  }

  shipped(batch: Batch, shippedBytes: number, objectBytes: number, created: number): void {
    this.counters.objects_uploaded += created;
    this.counters.bytes_uploaded += objectBytes;
    this.counters.ledger_lines += batch.ledgerLineCount;
    this.counters.quarantined_lines += batch.invalid.length;
    if (batch.invalid.length > 0) {
      this.log.warn({ segment: batch.segment, count: batch.invalid.length, offsets: batch.invalid.slice(0, 10).map((r) => r.offset), reasons: [...new Set(batch.invalid.map((r) => r.reason))] }, 'shipper: malformed lines quarantined');
    }
    if (batch.lastEmittedAt) this.lastShippedEmittedAt = batch.lastEmittedAt;
    this.lastSuccessAt = new Date().toISOString();
    this.progressDirty = true;
    this.cycleShipped += shippedBytes;
    this.o.onShipped?.({ shippedBytes: this.cycleShipped, backlogAtStart: this.cycleBacklogAtStart });
  }

  /**
   * Unshipped bytes of each file now (a position that no longer fits its file, or whose file
   * changed before it, counts the whole file).
   */
  async unshipped(files: LedgerFile[]): Promise<{ file: LedgerFile; size: number; shipped: number }[]> {
    const out: { file: LedgerFile; size: number; shipped: number }[] = [];
    for (const f of files) {
      const st = fs.lstatSync(f.path, { throwIfNoEntry: false });
      if (!st?.isFile()) continue;
      out.push({ file: f, size: st.size, shipped: await verifiedShipped(this.store.get(f.name), f.path, st) });
    }
    return out;
  }

  async backlogOf(files: LedgerFile[]): Promise<number> {
    return (await this.unshipped(files)).reduce((sum, u) => sum + u.size - u.shipped, 0);
  }

  /** Recomputes backlog and oldest unshipped entry from the files. */
  async refreshFigures(files: LedgerFile[]): Promise<void> {
    const figures = await this.unshipped(files);
    this.backlog = figures.reduce((sum, u) => sum + u.size - u.shipped, 0);
    let oldest: string | null = null;
    for (const u of figures) {
      if (u.size <= u.shipped) continue;
      oldest = (await emittedAtOf(u.file.path, u.shipped, this.o.maxLineBytes)) ?? null;
      if (oldest) break;
    }
    this.oldestUnshippedAt = this.backlog > 0 ? oldest : null;
  }

  status(): ShipperStatus {
    return {
      v: 1,
      pid: process.pid,
      node: this.o.node,
      destination: destinationLabel(this.o.destination.description, this.o.prefix),
      ledger_dir: this.o.ledgerDir,
      started_at: this.startedAt,
      updated_at: new Date().toISOString(),
      backlog_bytes: this.backlog,
      oldest_unshipped_at: this.oldestUnshippedAt,
      last_success_at: this.lastSuccessAt,
      last_error: this.lastError,
      counters: { ...this.counters },
      ...(this.skipped.length > 0 ? { skipped: this.skipped.map((s) => ({ ...s })) } : {}),
    };
  }

  async writeStatusFile(): Promise<void> {
    try {
      await writeStatus(this.o.stateDir, this.status());
    } catch (err) {
      this.log.warn({ err: errorText(err) }, 'shipper: could not write status.json');
    }
  }

  progress(): NodeProgress {
    return buildNodeProgress(this.o.node, this.store, this.backlog, this.lastShippedEmittedAt, Math.max(this.o.retentionMs, 86_400_000));
  }

  /**
   * Writes `<prefix>/nodes/<node>.json` after progress, and every progressMs when idle. `force`
   * retries until stored (end of `--once`); `final` tries once (a stop must not wait for an outage).
   */
  async maybeWriteProgress(destination: RetryingDestination, force: boolean, final = false): Promise<void> {
    const due = force || final || this.progressDirty || Date.now() - this.lastProgressAt >= this.o.progressMs;
    if (!due) return;
    const body = Buffer.from(JSON.stringify(this.progress()) + '\n');
    const name = nodeProgressName(this.o.prefix, this.o.node);
    const options = { contentType: 'application/json' };
    try {
      if (force) await destination.put(name, body, options);
      else if (final) await withTimeout(destination.putOnce(name, body, options), 5_000, 'final progress report');
      else await destination.putOnce(name, body, options);
      this.lastProgressAt = Date.now();
      this.progressDirty = false;
    } catch (err) {
      if (err instanceof StoppedError) return;
      if (force) throw err;
      this.log.warn({ err: errorText(err), object: name }, 'shipper: could not write the node progress object; will retry');
    }
  }
}

/** A stop must not hang on a destination that does not answer: give up on `p` after `ms`. */
function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
