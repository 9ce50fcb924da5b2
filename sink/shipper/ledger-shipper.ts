/**
 * The shipper's pipeline for one ledger directory, one pass at a time:
 *
 *   scan (ledger-files) -> check each position (segment-identity; reconcile when it does not fit)
 *   -> tail complete lines into batches (segment-batcher) -> upload create-only (uploader, through
 *   the RetryingDestination) -> checkpoint (PositionStore.advance) -> seal, retention, telemetry.
 *
 * A data item goes through it once, in that order. Problems found on the way (bytes that differ from
 * what the destination holds) come back as values and are handled in one place (syncSegment).
 */
import type { Stats } from 'node:fs';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import type { Logger } from 'pino';
import { activeSegmentName } from '../../src/index.js';
import { removeStaleTempFiles } from '../atomic-file.js';
import { errorText, GaveUpError, RetryingDestination, StopSignal, StoppedError } from '../destinations/retrying.js';
import type { Batch } from './batch.js';
import { NotRegularFileError, openLedgerFile, scanLedgerDir, type LedgerFile } from './ledger-files.js';
import { resolveOptions, type ResolvedShipperOptions, type ShipperOptions } from './options.js';
import { PositionStore, type SegmentPosition } from './positions.js';
import { listSegmentCoverage, reconcileSegment, type CoveredRange } from './reconcile.js';
import { applyRetention } from './retention.js';
import { SegmentBatcher } from './segment-batcher.js';
import { fingerprintAt, identityProblem, positionFits } from './segment-identity.js';
import { ShipperTelemetry } from './telemetry.js';
import { uploadBatch, type UploadContext } from './uploader.js';

/** How one pass over a segment ended. */
type ShipOutcome =
  | { kind: 'end' }
  | { kind: 'stopped' }
  /** The file's bytes differ from what the destination holds under a name we were about to use. */
  | { kind: 'conflict'; detail: string };

export type ShipperMode = 'daemon' | 'once';

/**
 * Tails every segment of a ledger directory and stores its complete lines as objects, each byte
 * range exactly once. One instance per ledger directory (guarded by the lock in lock.ts).
 */
export class Shipper {
  readonly o: ResolvedShipperOptions;
  readonly stop = new StopSignal();
  readonly destination: RetryingDestination;
  readonly telemetry: ShipperTelemetry;
  /** Segments whose last pass failed, with the error (cleared when one succeeds). */
  readonly segmentErrors = new Map<string, string>();
  private readonly store: PositionStore;
  private readonly log: Logger;
  private readonly upload: UploadContext;
  /** Ranges already at the destination beyond the saved position, per segment (its generation only). */
  private readonly coverage = new Map<string, CoveredRange[]>();
  /** Last size seen per segment: one deleted before it was fully shipped is reported with what it lost. */
  private readonly lastSize = new Map<string, number>();
  private lastScan: LedgerFile[] = [];
  private refreshing = false;

  constructor(options: ShipperOptions, mode: ShipperMode = 'daemon') {
    this.o = resolveOptions(options);
    this.log = this.o.log;
    this.store = new PositionStore(this.o.stateDir, this.log);
    this.telemetry = new ShipperTelemetry(this.o, this.store, this.log);
    // --once must end: it gives up after maxRetryMs of failures, and at once on a permanent error.
    const policy = mode === 'once' ? { ...this.o.retry, giveUpAfterMs: this.o.maxRetryMs, giveUpOnPermanent: true } : this.o.retry;
    this.destination = new RetryingDestination(this.o.destination, policy, this.stop, this.log, {
      onError: (err, permanent) => this.telemetry.destinationError(err, permanent),
    });
    this.upload = { destination: this.destination, prefix: this.o.prefix, node: this.o.node, gzip: this.o.gzip };
  }

  ledgerDirExists(): boolean {
    return fs.statSync(this.o.ledgerDir, { throwIfNoEntry: false })?.isDirectory() ?? false;
  }

  async init(): Promise<void> {
    await fsp.mkdir(this.o.stateDir, { recursive: true, mode: 0o700 });
    // We hold the lock: temp files of a dead process (a kill -9 mid-write) are litter.
    await removeStaleTempFiles(this.o.stateDir, this.log);
    await this.store.load();
  }

  /**
   * One pass over every ledger file: ship what is complete, seal what is finished, apply retention,
   * refresh status. Returns true when everything present was shipped. Throws GaveUpError (--once).
   */
  async cycle(): Promise<boolean> {
    const scanAt = new Date();
    const scan = scanLedgerDir(this.o.ledgerDir, true);
    this.telemetry.noteSkipped(scan.skipped);
    const present = new Set(scan.files.map((f) => f.name));
    for (const name of new Set([...this.store.names(), ...this.lastSize.keys()])) {
      if (!present.has(name)) await this.vanished(name);
    }
    const figures = await this.telemetry.unshipped(scan.files);
    for (const u of figures) this.lastSize.set(u.file.name, u.size);
    this.lastScan = scan.files;
    this.telemetry.startCycle(figures.reduce((sum, u) => sum + u.size - u.shipped, 0));
    let drained = true;
    for (const f of scan.files) {
      if (this.stop.isStopped) {
        drained = false;
        break;
      }
      try {
        if (!(await this.syncSegment(f))) drained = false;
        this.segmentErrors.delete(f.name);
      } catch (err) {
        if (err instanceof GaveUpError) throw err; // the destination is gone for good: the pass is over
        // One unreadable segment (permissions, I/O error) must not hold up the others.
        drained = false;
        this.telemetry.error(err);
        this.segmentErrors.set(f.name, errorText(err));
        this.log.error({ segment: f.name, err: errorText(err) }, 'shipper: cannot ship this segment; will retry on the next pass');
      }
    }
    await this.applyRetention();
    await this.telemetry.refreshFigures(scan.files);
    if (drained && this.store.moveCompleteThrough(scanAt.toISOString())) await this.store.save();
    await this.telemetry.maybeWriteProgress(this.destination, false);
    await this.telemetry.writeStatusFile();
    return drained;
  }

  /** What is not shipped yet, per file, for an error message. */
  async notShipped(): Promise<string[]> {
    return (await this.telemetry.unshipped(this.lastScan))
      .filter((u) => u.size > u.shipped)
      .map((u) => `${u.file.name}${u.file.plain ? ' (ledger.jsonl)' : ''}: ${u.size - u.shipped} bytes from offset ${u.shipped}`);
  }

  private async vanished(name: string): Promise<void> {
    const pos = this.store.get(name);
    const shipped = pos?.position ?? 0;
    const lastSize = this.lastSize.get(name);
    this.coverage.delete(name);
    this.lastSize.delete(name);
    await this.store.forget(name);
    if (pos?.sealed || (lastSize !== undefined && shipped >= lastSize)) {
      this.log.info({ segment: name, shippedThrough: shipped }, 'shipper: a segment was removed after everything seen in it was shipped');
    } else {
      this.log.error(
        { segment: name, shippedThrough: shipped, lastSeenSize: lastSize, unshippedBytes: lastSize !== undefined ? Math.max(0, lastSize - shipped) : undefined },
        'shipper: segment was deleted before it was fully shipped; bytes after shippedThrough never reached the destination',
      );
    }
  }

  /** Ships one ledger file as far as it goes. Returns true when it reached the file's end. */
  private async syncSegment(f: LedgerFile): Promise<boolean> {
    const name = f.name;
    const known = this.store.get(name);
    if (known?.sealed) {
      // A week of hourly segments is ~170 files: an lstat each per pass, no open, no read.
      const st = fs.lstatSync(f.path, { throwIfNoEntry: false });
      if (st?.isFile() && positionFits(known, st) && st.size === known.position) return true;
    }
    let fh: fsp.FileHandle;
    try {
      fh = await openLedgerFile(f.path);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') {
        if (this.store.get(name)) await this.vanished(name);
        return true;
      }
      // Swapped for a symlink or a FIFO since the scan (or a plain ledger.jsonl just adopted into
      // a segment): never opened; the next scan reports or ships it.
      if (code === 'ELOOP' || err instanceof NotRegularFileError) return false;
      throw err;
    }
    try {
      const fst = await fh.stat();
      this.lastSize.set(name, fst.size);
      let pos = this.store.get(name);
      if (!pos) {
        pos = await this.reconcile(f, fh, fst, undefined);
      } else {
        const problem = await identityProblem(pos, fh, fst);
        if (problem) {
          pos = await this.reconcile(f, fh, fst, { problem });
        } else if (!this.coverage.has(name)) {
          const gen = pos.gen;
          const from = pos.position;
          const cov = await listSegmentCoverage(this.destination, this.o.prefix, this.o.node, name);
          this.coverage.set(name, (cov.get(gen) ?? []).filter((r) => r.end > from));
        }
      }
      if (pos.sealed) this.store.unseal(name); // it grew after all: a late writer
      const quiet = !f.active && Date.now() - fst.mtimeMs >= this.o.sealQuietMs;
      const outcome = await this.shipFrom(f, fh, fst, quiet);
      if (outcome.kind === 'conflict') {
        await this.reconcile(f, fh, await fh.stat(), { problem: outcome.detail, atLeastGen: this.store.get(name)!.gen + 1 });
        return false;
      }
      if (outcome.kind === 'stopped') return false;
      if (quiet) {
        const now = await fh.stat();
        if (now.size === this.store.get(name)!.position && Date.now() - now.mtimeMs >= this.o.sealQuietMs) {
          await this.store.seal(name);
          this.coverage.delete(name);
        }
      }
      return true;
    } catch (err) {
      if (err instanceof StoppedError) return false;
      throw err;
    } finally {
      await fh.close();
    }
  }

  /**
   * Takes up a segment whose position is unknown or no longer fits: compares the file with what the
   * destination holds and goes on from the first byte that is not stored (or differs, under a new
   * generation). Reported when the file changed underneath us.
   */
  private async reconcile(f: LedgerFile, fh: fsp.FileHandle, fst: Stats, changed: { problem: string; atLeastGen?: number } | undefined): Promise<SegmentPosition> {
    const name = f.name;
    const before = this.store.get(name);
    const r = await reconcileSegment(this.destination, this.o.prefix, this.o.node, name, fh, fst.size, this.o, changed?.atLeastGen);
    const bumped = r.difference !== undefined || (before !== undefined && r.gen > before.gen);
    if (bumped) {
      this.telemetry.counters.generations_bumped++;
      const detail = [changed?.problem, r.difference].filter(Boolean).join('; ');
      this.log.error(
        { segment: name, detail, shippedThrough: before?.position, size: fst.size, gen: r.gen, from: r.position },
        'shipper: segment was replaced or truncated underneath the shipper (its bytes differ from what was shipped); shipping it again from its first changed range under a new generation (nothing is skipped)',
      );
      this.telemetry.error(`${name}: bytes changed underneath the shipper (${detail}); shipped again from offset ${r.position} as generation ${r.gen}`);
    } else if (changed) {
      this.log.warn({ segment: name, problem: changed.problem, from: r.position }, 'shipper: segment changed identity, but its bytes match what was shipped; going on');
    }
    await this.store.begin(name, { position: r.position, gen: r.gen, sealed: false, ...(await fingerprintAt(fh, fst, r.position)) });
    this.coverage.set(name, r.ranges);
    return this.store.get(name)!;
  }

  /** Ships from the saved position, skipping ranges the destination already holds. */
  private async shipFrom(f: LedgerFile, fh: fsp.FileHandle, fst: Stats, quiet: boolean): Promise<ShipOutcome> {
    const name = f.name;
    const eof = fst.size;
    for (;;) {
      if (this.stop.isStopped) return { kind: 'stopped' };
      const pos = this.store.get(name)!;
      const cur = pos.position;
      const ranges = (this.coverage.get(name) ?? []).filter((r) => r.end > cur);
      this.coverage.set(name, ranges);
      const hit = ranges.find((r) => r.start <= cur);
      let limit = Infinity;
      let exact = false;
      if (hit?.complete) {
        // A killed shipper stored this range but never saved the position: skip, do not re-upload.
        if (hit.end > eof) return { kind: 'conflict', detail: `a stored range ends at ${hit.end}, beyond the file's ${eof} bytes` };
        await this.store.advance(name, hit.end, await fingerprintAt(fh, fst, hit.end, pos));
        continue;
      } else if (hit) {
        // Only one of the range's objects landed: re-cut exactly that range (same names).
        limit = hit.end;
        exact = hit.start === cur;
      } else {
        const next = ranges.find((r) => r.start > cur);
        if (next) limit = next.start;
      }
      const batcher = new SegmentBatcher(fh, name, pos.gen, cur, this.o.batchBytes, this.o.maxLineBytes);
      for (;;) {
        const batch = await batcher.next({ limit, sizeCut: !exact, includeTail: exact || (quiet && limit === Infinity), eof: Math.max(eof, limit === Infinity ? 0 : limit) });
        if (!batch) break;
        if (exact && batch.end !== limit) return { kind: 'conflict', detail: `bytes ${cur}-${limit} no longer end on a line boundary at ${limit}` };
        const out = await uploadBatch(this.upload, batch);
        if (out.kind === 'conflict') return { kind: 'conflict', detail: `object ${out.object} holds different bytes (sha256 ${out.theirs ?? 'unknown'}, ours ${out.ours})` };
        await this.commit(name, fh, fst, batch, out.bytes, out.created);
        if (exact || this.stop.isStopped) break;
      }
      if (this.stop.isStopped) return { kind: 'stopped' };
      if (limit === Infinity) return { kind: 'end' };
      const now = this.store.get(name)!.position;
      if (now === limit) continue;
      if (batcher.readPos >= limit && !batcher.atEof) return { kind: 'conflict', detail: `the line at ${now} runs past ${limit}, where an existing object starts` };
      return { kind: 'end' }; // the file ends before the next stored range (it will grow there)
    }
  }

  /** Checkpoint: the destination confirmed the batch; the position moves past it. */
  private async commit(name: string, fh: fsp.FileHandle, fst: Stats, batch: Batch, objectBytes: number, created: number): Promise<void> {
    const before = this.store.get(name)!;
    const shipped = batch.end - before.position;
    await this.store.advance(name, batch.end, await fingerprintAt(fh, fst, batch.end, before), batch.writers, batch.lastEmittedAt);
    this.telemetry.shipped(batch, shipped, objectBytes, created);
  }

  private async applyRetention(): Promise<void> {
    await applyRetention(this.o.ledgerDir, this.store, activeSegmentName(this.o.ledgerDir), this.o.retentionMs, async (name, st) => {
      await this.store.forget(name);
      this.lastSize.delete(name);
      this.coverage.delete(name);
      this.telemetry.counters.segments_deleted++;
      this.log.info({ segment: name, bytes: st.size, lastWrite: new Date(st.mtimeMs).toISOString() }, 'shipper: deleted a fully shipped segment past its retention period');
    });
  }

  /**
   * Refreshes the figures from the files now. Runs on a timer too, because a cycle can sit in a
   * retry loop for hours during an outage and `metering status` must show the growing backlog.
   */
  async refreshStatus(): Promise<void> {
    if (this.refreshing || !this.ledgerDirExists()) return;
    this.refreshing = true;
    try {
      await this.telemetry.refreshFigures(scanLedgerDir(this.o.ledgerDir, false).files);
      await this.telemetry.writeStatusFile();
    } catch (err) {
      this.log.warn({ err: errorText(err) }, 'shipper: could not refresh the status');
    } finally {
      this.refreshing = false;
    }
  }
}
