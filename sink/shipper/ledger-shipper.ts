import type { Stats } from 'node:fs';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import type { Logger } from 'pino';
import { activeSegmentName, listSegments } from '../../src/index.js';
import { PermanentDestinationError } from '../destinations/destination.js';
import { nodeProgressName, type NodeProgress } from '../layout.js';
import { sha256Hex, type Batch } from './batch.js';
import { buildNodeProgress, notAfter } from './node-progress.js';
import { emittedAtOf } from './oldest-unshipped.js';
import { resolveOptions, type ResolvedShipperOptions, type ShipperOptions } from './options.js';
import { applyRetention } from './retention.js';
import { PositionStore, type SegmentPosition } from './positions.js';
import { highestGen, listSegmentCoverage, type CoveredRange } from './reconcile.js';
import { errorText, retryForever, StopSignal, StoppedError } from './retry.js';
import { SegmentBatcher } from './segment-batcher.js';
import { destinationLabel, writeStatus, zeroCounters, type ShipperCounters, type ShipperStatus } from './status.js';
import { uploadBatch, type UploadContext } from './uploader.js';

/** Bytes at the head of a segment whose hash is remembered to catch an in-place rewrite. */
const HEAD_BYTES = 4096;

/** Content of a segment no longer matches what the destination holds for it. */
class SegmentConflict extends Error {}

/**
 * The shipper: tails every segment of a ledger directory and stores its complete lines as objects,
 * each byte range exactly once. One instance per ledger directory (guarded by a lock).
 */
export class Shipper {
  readonly o: ResolvedShipperOptions;
  readonly stop = new StopSignal();
  private readonly store: PositionStore;
  private readonly log: Logger;
  /** Ranges already at the destination beyond the saved position, per segment (current gen only). */
  private readonly coverage = new Map<string, CoveredRange[]>();
  private readonly lastStat = new Map<string, Stats>();
  private readonly counters: ShipperCounters = zeroCounters();
  private readonly startedAt = new Date().toISOString();
  private lastSuccessAt: string | null = null;
  private lastError: ShipperStatus['last_error'] = null;
  private lastProgressAt = 0;
  private progressDirty = true;
  private backlog = 0;
  private oldestUnshippedAt: string | null = null;
  private cycleShipped = 0;
  private cycleBacklogAtStart = 0;
  private readonly upload: UploadContext;

  constructor(options: ShipperOptions) {
    this.o = resolveOptions(options);
    this.log = this.o.log;
    this.store = new PositionStore(this.o.stateDir, this.log);
    this.upload = {
      destination: this.o.destination,
      prefix: this.o.prefix,
      node: this.o.node,
      gzip: this.o.gzip,
      retry: this.o.retry,
      stop: this.stop,
      log: this.log,
      hooks: {
        onError: (err, _attempt, permanent) => {
          this.counters.upload_errors++;
          this.lastError = {
            at: new Date().toISOString(),
            message: errorText(err),
            ...(permanent && err instanceof PermanentDestinationError ? { hint: err.hint } : {}),
          };
        },
      },
    };
  }

  checkLedgerDir(): void {
    if (!fs.statSync(this.o.ledgerDir, { throwIfNoEntry: false })?.isDirectory()) {
      throw new Error(`ledger directory ${this.o.ledgerDir} does not exist (is the recorder writing somewhere else? see --ledger-dir)`);
    }
  }

  async init(): Promise<void> {
    await fsp.mkdir(this.o.stateDir, { recursive: true, mode: 0o700 });
    await this.store.load();
  }

  private retryCall<T>(what: string, fn: () => Promise<T>): Promise<T> {
    return retryForever(what, fn, this.o.retry, this.stop, this.log, this.upload.hooks);
  }

  /**
   * One pass over every segment: ship what is complete, seal what is finished, apply retention,
   * refresh status. Returns true when everything present was shipped.
   */
  async cycle(): Promise<boolean> {
    const scanAt = new Date();
    const dir = this.o.ledgerDir;
    const names = listSegments(dir);
    const active = activeSegmentName(dir);
    const present = new Set(names);
    for (const name of new Set([...Object.keys(this.store.state.segments), ...this.lastStat.keys()])) {
      if (!present.has(name)) await this.vanished(name);
    }
    this.cycleShipped = 0;
    this.cycleBacklogAtStart = this.computeBacklog(names, true);
    let drained = true;
    for (const name of names) {
      if (this.stop.isStopped) {
        drained = false;
        break;
      }
      try {
        if (!(await this.syncSegment(name, name === active))) drained = false;
      } catch (err) {
        // One unreadable segment (permissions, I/O error) must not hold up the others.
        drained = false;
        this.noteError(err);
        this.segmentErrors.set(name, errorText(err));
        this.log.error({ segment: name, err: errorText(err) }, 'shipper: cannot ship this segment; will retry on the next pass');
        continue;
      }
      this.segmentErrors.delete(name);
    }
    await this.applyRetention(active);
    this.backlog = this.computeBacklog(listSegments(dir));
    this.oldestUnshippedAt = this.backlog > 0 ? await this.findOldestUnshipped() : null;
    if (drained && this.advanceCompleteThrough(scanAt.toISOString())) await this.store.save();
    await this.maybeWriteProgress(false);
    await this.writeStatusFile();
    return drained;
  }

  /**
   * With `remember`, also notes each segment's size so one deleted before we reached it is still
   * reported (only the cycle does this; the status timer must not resurrect a retired segment).
   */
  private computeBacklog(names: string[], remember = false): number {
    let total = 0;
    for (const name of names) {
      const st = fs.statSync(path.join(this.o.ledgerDir, name), { throwIfNoEntry: false });
      if (!st) continue;
      if (remember) this.lastStat.set(name, st);
      const pos = this.store.state.segments[name];
      total += pos && pos.ino === st.ino && pos.position <= st.size ? st.size - pos.position : st.size;
    }
    return total;
  }

  private async vanished(name: string): Promise<void> {
    const pos = this.store.state.segments[name];
    const shipped = pos?.position ?? 0;
    const last = this.lastStat.get(name);
    delete this.store.state.segments[name];
    this.coverage.delete(name);
    this.lastStat.delete(name);
    if (pos?.sealed || (last && shipped >= last.size)) {
      this.log.info({ segment: name, shippedThrough: shipped }, 'shipper: a segment was removed after everything seen in it was shipped');
    } else {
      const lostAtLeast = last ? Math.max(0, last.size - shipped) : undefined;
      this.log.error(
        { segment: name, shippedThrough: shipped, lastSeenSize: last?.size, unshippedBytes: lostAtLeast },
        'shipper: segment was deleted before it was fully shipped; bytes after shippedThrough never reached the destination',
      );
    }
    if (pos) await this.store.save();
  }

  /** Ships one segment as far as it goes. Returns true when it reached the segment's end. */
  private async syncSegment(name: string, isActive: boolean): Promise<boolean> {
    const file = path.join(this.o.ledgerDir, name);
    const sealed = this.store.state.segments[name];
    if (sealed?.sealed) {
      // A week of hourly segments is ~170 files: a stat each per pass, no open, no read.
      const st = fs.statSync(file, { throwIfNoEntry: false });
      if (st && st.dev === sealed.dev && st.ino === sealed.ino && st.size === sealed.position) {
        this.lastStat.set(name, st);
        return true;
      }
    }
    let fh: fsp.FileHandle;
    try {
      fh = await fsp.open(file, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        if (this.store.state.segments[name]) await this.vanished(name);
        return true;
      }
      throw err;
    }
    try {
      const fst = await fh.stat();
      this.lastStat.set(name, fst);
      let pos = this.store.state.segments[name];
      if (pos?.sealed && pos.dev === fst.dev && pos.ino === fst.ino && pos.position === fst.size) return true;
      if (!pos) {
        pos = await this.adopt(name, fh, fst, undefined);
      } else {
        const problem = await this.identityProblem(pos, fh, fst);
        if (problem) {
          this.log.error(
            { segment: name, problem, shippedThrough: pos.position, size: fst.size, gen: pos.gen },
            'shipper: segment was replaced or truncated underneath the shipper; shipping its new content from the start under a new generation (nothing is skipped)',
          );
          this.counters.generations_bumped++;
          pos = await this.adopt(name, fh, fst, pos.gen + 1);
        } else if (!this.coverage.has(name)) {
          const cov = await this.retryCall(`list ${name}`, () => listSegmentCoverage(this.o.destination, this.o.prefix, this.o.node, name));
          this.coverage.set(name, cov.get(pos.gen) ?? []);
        }
      }
      if (pos.sealed) pos.sealed = false; // it grew after all: a late writer
      const quiet = !isActive && Date.now() - fst.mtimeMs >= this.o.sealQuietMs;
      const reachedEnd = await this.shipFrom(name, pos, fh, quiet, fst.size);
      if (reachedEnd && quiet) {
        const now = await fh.stat();
        if (now.size === pos.position && Date.now() - now.mtimeMs >= this.o.sealQuietMs) {
          pos.sealed = true;
          this.coverage.delete(name);
          await this.store.save();
        }
      }
      return reachedEnd;
    } catch (err) {
      if (err instanceof StoppedError) return false;
      if (err instanceof SegmentConflict) return false;
      throw err;
    } finally {
      await fh.close();
    }
  }

  private async identityProblem(pos: SegmentPosition, fh: fsp.FileHandle, fst: Stats): Promise<string | undefined> {
    if (fst.dev !== pos.dev || fst.ino !== pos.ino) return 'file identity (device/inode) changed';
    if (fst.size < pos.position) return `file is ${fst.size} bytes, shorter than the shipped position ${pos.position}`;
    if (pos.headLen > 0 && fst.size > pos.position) {
      const head = await readHead(fh, pos.headLen);
      if (head.length < pos.headLen || sha256Hex(head) !== pos.headHash) return 'the first bytes changed (rewritten in place)';
    }
    return undefined;
  }

  /**
   * Takes up a segment whose position is unknown or no longer valid: asks the destination what it
   * already holds. The highest generation there is reused if its first object matches the bytes of
   * the file (a restart, a lost store); otherwise the content is new and gets a new generation.
   */
  private async adopt(name: string, fh: fsp.FileHandle, fst: Stats, minGen: number | undefined): Promise<SegmentPosition> {
    const cov = await this.retryCall(`list ${name}`, () => listSegmentCoverage(this.o.destination, this.o.prefix, this.o.node, name));
    const top = highestGen(cov);
    let gen = minGen ?? 0;
    let ranges: CoveredRange[] = [];
    if (top !== undefined && top >= gen) {
      const candidate = cov.get(top)!;
      if (await this.matches(name, fh, top, candidate[0]!)) {
        gen = top;
        ranges = candidate;
      } else {
        gen = top + 1;
        if (minGen === undefined) {
          this.counters.generations_bumped++;
          this.log.error({ segment: name, gen }, 'shipper: the destination holds different bytes for this segment (replaced while no position was known); shipping it under a new generation');
        }
      }
    }
    const pos: SegmentPosition = { position: 0, gen, dev: fst.dev, ino: fst.ino, headLen: 0, headHash: sha256Hex(Buffer.alloc(0)), sealed: false };
    this.store.state.segments[name] = pos;
    this.coverage.set(name, ranges);
    await this.store.save();
    return pos;
  }

  /** Whether the file's bytes reproduce an existing object of the range exactly. */
  private async matches(name: string, fh: fsp.FileHandle, gen: number, range: CoveredRange): Promise<boolean> {
    const batcher = new SegmentBatcher(fh, name, gen, range.start, this.o.batchBytes, this.o.maxLineBytes);
    const batch = await batcher.next({ limit: range.end, sizeCut: false, includeTail: true });
    if (!batch || batch.end !== range.end) return false;
    for (const cls of ['ledger', 'quarantine'] as const) {
      const theirs = range.sha256[cls];
      if (theirs !== undefined && theirs !== sha256Hex(batch.body(cls))) return false;
    }
    return true;
  }

  /** Ships from the saved position, skipping ranges the destination already holds. */
  private async shipFrom(name: string, pos: SegmentPosition, fh: fsp.FileHandle, quiet: boolean, eof: number): Promise<boolean> {
    for (;;) {
      if (this.stop.isStopped) return false;
      const ranges = (this.coverage.get(name) ?? []).filter((r) => r.end > pos.position);
      this.coverage.set(name, ranges);
      const cur = pos.position;
      const hit = ranges.find((r) => r.start <= cur);
      let limit = Infinity;
      let exact = false;
      if (hit?.complete) {
        // A killed shipper stored this range but never saved the position: skip, do not re-upload.
        pos.position = hit.end;
        await this.store.save();
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
        if (exact && batch.end !== limit) await this.conflict(name, fh, pos, `bytes ${cur}-${limit} no longer end on a line boundary at ${limit}`);
        const out = await uploadBatch(this.upload, batch);
        if (out.kind === 'conflict') await this.conflict(name, fh, pos, `object ${out.object} holds different bytes (sha256 ${out.theirs ?? 'unknown'}, ours ${out.ours})`);
        else await this.commit(pos, fh, batch, out.bytes, out.created);
        if (exact || this.stop.isStopped) break;
      }
      if (this.stop.isStopped) return false;
      if (limit === Infinity) return true;
      if (pos.position === limit) continue;
      if (batcher.readPos >= limit && !batcher.atEof) await this.conflict(name, fh, pos, `the line at ${pos.position} runs past ${limit}, where an existing object starts`);
      return true; // the file ends before the next stored range (it will grow there)
    }
  }

  private async conflict(name: string, fh: fsp.FileHandle, pos: SegmentPosition, detail: string): Promise<never> {
    this.counters.generations_bumped++;
    this.log.error({ segment: name, gen: pos.gen, detail }, 'shipper: segment bytes differ from what was shipped (replaced underneath us); shipping it again under a new generation from its start');
    await this.adopt(name, fh, await fh.stat(), pos.gen + 1);
    throw new SegmentConflict(detail);
  }

  private async commit(pos: SegmentPosition, fh: fsp.FileHandle, batch: Batch, bytes: number, created: number): Promise<void> {
    const shipped = batch.end - pos.position;
    pos.position = batch.end;
    const writers = this.store.state.writers;
    for (const [w, p] of batch.writers) {
      const old = writers[w];
      if (!old || p.seq > old.last_seq) writers[w] = { last_seq: p.seq, last_emitted_at: p.emitted_at };
    }
    if (batch.lastEmittedAt) {
      this.lastShippedEmittedAt = batch.lastEmittedAt;
      this.advanceCompleteThrough(batch.lastEmittedAt);
    }
    if (pos.headLen < HEAD_BYTES && pos.position > pos.headLen) {
      const head = await readHead(fh, Math.min(HEAD_BYTES, pos.position));
      pos.headLen = head.length;
      pos.headHash = sha256Hex(head);
    }
    await this.store.save();
    this.counters.objects_uploaded += created;
    this.counters.bytes_uploaded += bytes;
    this.counters.ledger_lines += batch.ledgerLineCount;
    this.counters.quarantined_lines += batch.invalid.length;
    if (batch.invalid.length > 0) {
      this.log.warn({ segment: batch.segment, count: batch.invalid.length, offsets: batch.invalid.slice(0, 10).map((r) => r.offset), reasons: [...new Set(batch.invalid.map((r) => r.reason))] }, 'shipper: malformed lines quarantined');
    }
    this.lastSuccessAt = new Date().toISOString();
    this.progressDirty = true;
    this.cycleShipped += shipped;
    this.o.onShipped?.({ shippedBytes: this.cycleShipped, backlogAtStart: this.cycleBacklogAtStart });
  }

  private lastShippedEmittedAt: string | undefined;
  /** Segments whose last pass failed, with the error (cleared when one succeeds). */
  readonly segmentErrors = new Map<string, string>();

  /** Moves complete_through forward (never back); true if it moved. */
  private advanceCompleteThrough(candidate: string | undefined): boolean {
    // Capped by our clock, so a future-dated line cannot pin complete_through ahead (see notAfter).
    if (candidate) candidate = notAfter(candidate, new Date());
    const cur = this.store.state.complete_through;
    if (!candidate || (cur && candidate <= cur)) return false;
    this.store.state.complete_through = candidate;
    return true;
  }

  private async applyRetention(active: string | undefined): Promise<void> {
    await applyRetention(this.o.ledgerDir, this.store.state.segments, active, this.o.retentionMs, async (name, st) => {
      delete this.store.state.segments[name];
      this.lastStat.delete(name);
      this.counters.segments_deleted++;
      await this.store.save();
      this.log.info({ segment: name, bytes: st.size, lastWrite: new Date(st.mtimeMs).toISOString() }, 'shipper: deleted a fully shipped segment past its retention period');
    });
  }

  /** emitted_at of the first unshipped entry of the oldest segment with a backlog. */
  private async findOldestUnshipped(): Promise<string | null> {
    for (const name of listSegments(this.o.ledgerDir)) {
      const pos = this.store.state.segments[name];
      const st = fs.statSync(path.join(this.o.ledgerDir, name), { throwIfNoEntry: false });
      if (!st) continue;
      const from = pos && pos.ino === st.ino && pos.position <= st.size ? pos.position : 0;
      if (st.size <= from) continue;
      const at = await emittedAtOf(this.o.ledgerDir, name, from, this.o.maxLineBytes);
      if (at) return at;
    }
    return null;
  }

  progress(): NodeProgress {
    return buildNodeProgress(this.o.node, this.store.state, this.backlog, this.lastShippedEmittedAt, Math.max(this.o.retentionMs, 86_400_000));
  }

  /** Writes `<prefix>/nodes/<node>.json` after progress, and every progressMs when idle. */
  async maybeWriteProgress(force: boolean, final = false): Promise<void> {
    const due = force || final || this.progressDirty || Date.now() - this.lastProgressAt >= this.o.progressMs;
    if (!due) return;
    const body = Buffer.from(JSON.stringify(this.progress()) + '\n');
    const name = nodeProgressName(this.o.prefix, this.o.node);
    const put = (): Promise<void> => this.o.destination.put(name, body, { contentType: 'application/json' });
    try {
      if (force) await this.retryCall(`put ${name}`, put);
      else if (final) await withTimeout(put(), 5_000, 'final progress report');
      else await put();
      this.lastProgressAt = Date.now();
      this.progressDirty = false;
    } catch (err) {
      if (err instanceof StoppedError) return;
      this.upload.hooks.onError?.(err, 0, err instanceof PermanentDestinationError);
      this.log.warn({ err: errorText(err), object: name }, 'shipper: could not write the node progress object; will retry');
    }
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
    };
  }

  /**
   * Refreshes the figures from the files now. Runs on a timer too, because a cycle can sit in a
   * retry loop for hours during an outage and `metering status` must show the growing backlog.
   */
  async refreshStatus(): Promise<void> {
    if (this.refreshing) return;
    this.refreshing = true;
    try {
      this.backlog = this.computeBacklog(listSegments(this.o.ledgerDir));
      this.oldestUnshippedAt = this.backlog > 0 ? await this.findOldestUnshipped() : null;
      await this.writeStatusFile();
    } catch (err) {
      this.log.warn({ err: errorText(err) }, 'shipper: could not refresh the status');
    } finally {
      this.refreshing = false;
    }
  }

  private refreshing = false;

  async writeStatusFile(): Promise<void> {
    try {
      await writeStatus(this.o.stateDir, this.status());
    } catch (err) {
      this.log.warn({ err: errorText(err) }, 'shipper: could not write status.json');
    }
  }

  noteError(err: unknown): void {
    this.lastError = { at: new Date().toISOString(), message: errorText(err) };
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

async function readHead(fh: fsp.FileHandle, len: number): Promise<Buffer> {
  const buf = Buffer.alloc(len);
  const { bytesRead } = await fh.read(buf, 0, len, 0);
  return buf.subarray(0, bytesRead);
}
