import * as fs from 'node:fs';
import { hostname } from 'node:os';
import * as path from 'node:path';
import type { EntryInput } from './entry.js';
import {
  ACTIVE_LINK,
  endsWithNewline,
  openActiveSegment,
  segmentCreatedAt,
  startNewSegment,
  withLedgerLockSync,
  type OpenSegment,
} from './ledger-layout.js';
import { isNodeId, NODE_ID_RULE } from './node-id.js';
import { defaultMeteringLogger, RateLimitedLog, type Logger } from './log.js';
import { NopRecorder, type Recorder, type RecorderStats } from './recorder.js';
import { randomId, ulid } from './ulid.js';
import { MeteringValidationError, snapshotInput, validateInput } from './validate.js';

/**
 * How durable an entry is when `emit` returns.
 * - `os` (default): written to the kernel; survives the process crashing, not the machine losing power.
 * - `fsync`: fdatasync after every entry; survives power loss, costs a disk flush per entry.
 * - `group-fsync`: fdatasync every `fsyncIntervalMs` for everything written since; power loss can
 *   lose at most that window, at a fraction of the cost of `fsync`.
 */
export type Durability = 'os' | 'fsync' | 'group-fsync';

export interface FileRecorderOptions {
  /** Ledger directory. Default: `<rootDir>/metering`. */
  dir?: string;
  /** Root used when `dir` is not given. Default: env METERING_DIR, else /var/lib/metering-ledger. */
  rootDir?: string;
  /** Node id stamped on every entry. Default: the hostname. Letters, digits, `.`, `_`, `-`. */
  node?: string;
  logger?: Logger;
  durability?: Durability;
  /** For `group-fsync`. Default 50 ms. */
  fsyncIntervalMs?: number;
  /** Rotate the active segment once it is this big. Default 64 MiB. */
  maxSegmentBytes?: number;
  /** Rotate the active segment once it is this old. Default 1 hour. */
  maxSegmentAgeMs?: number;
  /**
   * How often (at most) a writer checks that it still appends to the active segment and whether
   * it is due for rotation: one stat() per interval instead of one per entry. Default 20 ms.
   */
  checkIntervalMs?: number;
  /** Clock for entries without emitted_at (tests, simulations). Default: the system clock. */
  now?: () => Date;
}

export const DEFAULT_ROOT_DIR = '/var/lib/metering-ledger';
/** After a failed rotation, keep appending to the open segment this long before trying again. */
const ROTATION_RETRY_MS = 1000;

/** The ledger directory the options point at. */
export function resolveLedgerDir(options: Pick<FileRecorderOptions, 'dir' | 'rootDir'> = {}): string {
  if (options.dir) return path.resolve(options.dir);
  const root = options.rootDir ?? process.env.METERING_DIR ?? DEFAULT_ROOT_DIR;
  return path.resolve(root, 'metering');
}

/** Checks a node id: it becomes part of object names, so it must not be able to escape a prefix. */
export function checkNodeId(node: string): string {
  if (!isNodeId(node)) {
    throw new MeteringValidationError(`node id ${JSON.stringify(node)} must be ${NODE_ID_RULE}`);
  }
  return node;
}

function errorCode(err: unknown): string {
  return (err as NodeJS.ErrnoException)?.code ?? (err instanceof Error ? err.name : 'unknown');
}

/**
 * Appends entries to the ledger directory's active segment, one `write()` per entry. Within one
 * process emit is synchronous, so the event loop itself is the mutex; across processes O_APPEND
 * places each single write at the end without interleaving. Construct it with `openRecorder`, which
 * falls back to a NopRecorder instead of throwing when the ledger cannot be opened.
 */
export class FileRecorder implements Recorder {
  readonly dir: string;
  readonly node: string;
  /** Random id of this recorder instance; with `seq` it lets consumers detect lost entries. */
  readonly writer = randomId();
  private readonly log: Logger;
  private readonly rlog: RateLimitedLog;
  private readonly durability: Durability;
  private readonly maxBytes: number;
  private readonly maxAgeMs: number;
  private readonly checkIntervalMs: number;
  private readonly now: () => Date | string;
  private readonly linkPath: string;
  private readonly nodeWriterJson: string;
  private seg: OpenSegment | undefined;
  private segCreatedAt = 0;
  private lastCheck = 0;
  /** Size of the active segment at the last check plus what this writer appended since. */
  private approxSize = 0;
  private needNewline = false;
  /** Until then, do not try to rotate (the last attempt failed: directory not writable). */
  private rotationBlockedUntil = 0;
  private seq = 0;
  private dirty = false;
  private syncTimer: NodeJS.Timeout | undefined;
  private syncing: Promise<void> | undefined;
  private readonly counters: RecorderStats = { written: 0, droppedInvalid: 0, droppedWrite: 0, rotations: 0 };

  /** Opens the ledger; throws if it cannot. Prefer `openRecorder`, which never throws. */
  constructor(options: FileRecorderOptions = {}) {
    this.dir = resolveLedgerDir(options);
    this.node = checkNodeId(options.node ?? hostname());
    this.log = options.logger ?? defaultMeteringLogger();
    this.rlog = new RateLimitedLog(this.log);
    this.durability = options.durability ?? 'os';
    this.maxBytes = options.maxSegmentBytes ?? 64 * 1024 * 1024;
    this.maxAgeMs = options.maxSegmentAgeMs ?? 60 * 60 * 1000;
    this.checkIntervalMs = options.checkIntervalMs ?? 20;
    this.now = options.now ?? cachedSystemTime;
    this.linkPath = path.join(this.dir, ACTIVE_LINK);
    this.nodeWriterJson = `,"node":${JSON.stringify(this.node)},"writer":${JSON.stringify(this.writer)},"seq":`;
    this.reopen();
    if (this.durability === 'group-fsync') {
      this.syncTimer = setInterval(() => void this.syncNow(), options.fsyncIntervalMs ?? 50);
      this.syncTimer.unref();
    }
  }

  /**
   * Never throws, whatever `input` is: it is read exactly once into a plain copy (snapshotInput),
   * and only that copy is validated and serialised.
   */
  emit(input: EntryInput): string | undefined {
    let line: string;
    let id: string;
    let entry: EntryInput | undefined;
    try {
      if (!this.seg) {
        this.counters.droppedWrite++;
        this.rlog.warn('closed', { dir: this.dir }, 'metering: emit after close; entry dropped');
        return undefined;
      }
      entry = snapshotInput(input);
      const emitted_at = validateInput(entry, this.now);
      id = ulid(entry.emitted_at === undefined && this.now === cachedSystemTime ? lastMs : Date.parse(emitted_at));
      // The fixed head (version, node, writer) is serialized once per recorder; see serializeEntry
      // for the format, which this must match byte for byte (a test checks it does).
      let text = `{"v":1,"id":"${id}"${this.nodeWriterJson}${this.seq + 1},"kind":"${entry.kind}"`;
      if (entry.vm_id !== undefined) text += `,"vm_id":${JSON.stringify(entry.vm_id)}`;
      if (entry.snapshot_id !== undefined) text += `,"snapshot_id":${JSON.stringify(entry.snapshot_id)}`;
      if (entry.source_snapshot_id !== undefined) text += `,"source_snapshot_id":${JSON.stringify(entry.source_snapshot_id)}`;
      text += `,"reason":"${entry.reason}"`;
      if (entry.hypervisor !== undefined) text += `,"hypervisor":${JSON.stringify(entry.hypervisor)}`;
      const shape = entry.shape;
      line = `${text},"shape":{"cpu":${shape.cpu},"mem_bytes":${shape.mem_bytes},"storage_bytes":${shape.storage_bytes}},"emitted_at":"${emitted_at}"}\n`;
    } catch (err) {
      try {
        this.counters.droppedInvalid++;
        const reason = err instanceof MeteringValidationError ? err.reason : 'unexpected error while validating';
        // Log what is wrong and which resource (from the plain copy only), never the whole entry.
        this.rlog.warn(`invalid:${reason}`, { reason, kind: safeField(entry, 'kind'), vm_id: safeField(entry, 'vm_id'), snapshot_id: safeField(entry, 'snapshot_id') }, 'metering: invalid entry not recorded');
      } catch {
        // A logger that throws must not turn a dropped entry into an exception in the caller.
      }
      return undefined;
    }
    // The seq is spent even if the write fails: the gap tells consumers an entry was lost here.
    this.seq++;
    return this.write(line) ? id : undefined;
  }

  private write(line: string): boolean {
    let written = 0;
    try {
      this.checkSegment();
      const seg = this.seg!;
      if (this.needNewline) {
        // The previous write was torn; end that fragment so this entry starts on a line of its own.
        fs.writeSync(seg.fd, '\n');
        this.needNewline = false;
      }
      // Strings go straight to write(2); Node encodes them without an intermediate Buffer.
      written = fs.writeSync(seg.fd, line);
      const total = Buffer.byteLength(line);
      if (written < total) {
        // A short write (rare: quota, signal): finish the line from where the kernel stopped.
        const rest = Buffer.from(line).subarray(written);
        let done = 0;
        while (done < rest.length) done += fs.writeSync(seg.fd, rest, done, rest.length - done);
        written += done;
      }
      this.approxSize += written;
      this.counters.written++;
      if (this.durability === 'fsync') fs.fdatasyncSync(seg.fd);
      else if (this.durability === 'group-fsync') this.dirty = true;
      return true;
    } catch (err) {
      if (written > 0) this.needNewline = true;
      this.counters.droppedWrite++;
      const code = errorCode(err);
      this.rlog.warn(`write:${code}`, { dir: this.dir, code, seq: this.seq, dropped: this.counters.droppedWrite }, 'metering: ledger write failed; entry dropped');
      // Anything but a full disk may mean the fd is bad: re-resolve on the next emit.
      if (code !== 'ENOSPC' && code !== 'EDQUOT') this.lastCheck = 0;
      return false;
    }
  }

  /**
   * At most once per checkIntervalMs: make sure we still append to the active segment (another
   * process may have rotated it) and rotate when it is too big or too old. This is what keeps a
   * writer from appending to a rotated segment for longer than one interval.
   */
  private checkSegment(): void {
    const nowMs = Date.now();
    // A burst that fills the segment triggers a check early, so segments stay near their size limit
    // (unless rotating just failed: then the current segment goes on taking entries for a while).
    const full = this.approxSize >= this.maxBytes && nowMs >= this.rotationBlockedUntil;
    if (this.seg && nowMs - this.lastCheck < this.checkIntervalMs && !full) return;
    this.lastCheck = nowMs;
    const seg = this.seg!;
    const st = fs.statSync(this.linkPath, { throwIfNoEntry: false });
    if (!st || st.ino !== seg.ino || st.dev !== seg.dev) {
      this.reopenOrKeep('follow');
      return;
    }
    this.approxSize = st.size;
    if (nowMs < this.rotationBlockedUntil) return;
    if (st.size >= this.maxBytes || nowMs - this.segCreatedAt >= this.maxAgeMs) {
      try {
        const rotated = withLedgerLockSync(this.dir, 0, () => {
          const again = fs.statSync(this.linkPath, { throwIfNoEntry: false });
          // Someone else rotated first: just follow them.
          if (again && again.ino === seg.ino && again.dev === seg.dev) {
            startNewSegment(this.dir);
            return true;
          }
          return false;
        });
        if (rotated) this.counters.rotations++;
      } catch (err) {
        // A directory we cannot write (permissions, read-only remount, no inodes) stops rotation,
        // not recording: the open segment still takes appends. Try again in a while.
        this.rotationBlockedUntil = nowMs + ROTATION_RETRY_MS;
        const code = errorCode(err);
        this.rlog.warn(`rotate:${code}`, { dir: this.dir, code, segment: seg.name, size: st.size }, 'metering: cannot rotate the ledger segment (directory not writable?); appending to the current one');
        return;
      }
      this.reopenOrKeep('rotate');
    }
  }

  /** Re-resolves the active segment; if that fails, keeps appending to the open one (logged). */
  private reopenOrKeep(why: string): void {
    try {
      this.reopen();
    } catch (err) {
      this.rotationBlockedUntil = Date.now() + ROTATION_RETRY_MS;
      const code = errorCode(err);
      this.rlog.warn(`reopen:${code}`, { dir: this.dir, code, why, segment: this.seg?.name }, 'metering: cannot open the active ledger segment; appending to the one already open');
    }
  }

  private reopen(): void {
    const old = this.seg;
    this.seg = openActiveSegment(this.dir, (reason) =>
      this.log.warn({ dir: this.dir, reason }, 'metering: the active link did not point at a segment of this directory; repointed it to a fresh segment'),
    );
    this.segCreatedAt = segmentCreatedAt(this.seg.name) ?? Date.now();
    this.needNewline = !endsWithNewline(this.seg.fd, this.seg.size);
    this.lastCheck = Date.now();
    this.approxSize = this.seg.size;
    if (old) {
      try {
        if (this.durability !== 'os') fs.fdatasyncSync(old.fd);
      } finally {
        fs.closeSync(old.fd);
      }
    }
  }

  private async syncNow(): Promise<void> {
    if (this.syncing) return this.syncing;
    if (!this.dirty || !this.seg) return;
    this.dirty = false;
    const fd = this.seg.fd;
    this.syncing = new Promise<void>((resolve) => {
      fs.fdatasync(fd, (err) => {
        if (err) this.rlog.warn(`fsync:${err.code}`, { dir: this.dir, code: err.code }, 'metering: fsync failed');
        resolve();
      });
    }).finally(() => {
      this.syncing = undefined;
    });
    return this.syncing;
  }

  async flush(): Promise<void> {
    if (this.syncing) await this.syncing;
    if (this.durability !== 'os') {
      this.dirty = true;
      await this.syncNow();
    }
  }

  async close(): Promise<void> {
    if (!this.seg) return;
    await this.flush();
    if (this.syncTimer) clearInterval(this.syncTimer);
    fs.closeSync(this.seg.fd);
    this.seg = undefined;
  }

  stats(): RecorderStats {
    return { ...this.counters };
  }
}

let lastMs = -1;
let lastIso = '';
/** The system clock as an RFC 3339 string, formatted once per millisecond (hot path). */
function cachedSystemTime(): string {
  const ms = Date.now();
  if (ms !== lastMs) {
    lastMs = ms;
    lastIso = new Date(ms).toISOString();
  }
  return lastIso;
}

function safeField(input: unknown, key: string): unknown {
  if (typeof input !== 'object' || input === null) return undefined;
  const v = (input as Record<string, unknown>)[key];
  return typeof v === 'string' ? v.slice(0, 80) : undefined;
}

/**
 * Opens a FileRecorder. If the ledger cannot be opened (no permission, read-only disk, bad node id)
 * it logs a warning and returns a NopRecorder: metering must never stop a VM from starting.
 */
export function openRecorder(options: FileRecorderOptions = {}): Recorder {
  try {
    return new FileRecorder(options);
  } catch (err) {
    const logger = options.logger ?? defaultMeteringLogger();
    logger.warn(
      { dir: resolveLedgerDir(options), code: errorCode(err), err: err instanceof Error ? err.message : String(err) },
      'metering: cannot open the ledger; recording is disabled (NopRecorder)',
    );
    return new NopRecorder();
  }
}
