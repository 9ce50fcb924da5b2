import { WIRE_VERSION, type EntryInput, type LedgerEntry } from './entry.js';
import type { Family, Kind } from './kinds.js';
import { describeKind } from './kinds.js';
import type { Recorder, RecorderStats } from './recorder.js';
import { randomId, ulid } from './ulid.js';
import { snapshotInput, validateInput } from './validate.js';

export interface CaptureRecorderOptions {
  node?: string;
  /** Clock used when an entry has no emitted_at. */
  now?: () => Date;
}

/**
 * In-memory recorder for unit tests. Strict: an invalid entry throws MeteringValidationError, so a
 * bug shows up as a failing test instead of a silently dropped line in production billing.
 */
export class CaptureRecorder implements Recorder {
  private readonly captured: LedgerEntry[] = [];
  private readonly writer = randomId();
  private readonly node: string;
  private readonly now: () => Date;
  private seq = 0;

  constructor(options: CaptureRecorderOptions = {}) {
    this.node = options.node ?? 'test-node';
    this.now = options.now ?? (() => new Date());
  }

  emit(entryInput: EntryInput): string {
    // Strict, but reads the caller's object once, like the FileRecorder (what is checked is stored).
    const input = snapshotInput(entryInput);
    const emitted_at = validateInput(input, this.now);
    const entry: LedgerEntry = {
      v: WIRE_VERSION,
      id: ulid(Date.parse(emitted_at)),
      node: this.node,
      writer: this.writer,
      seq: ++this.seq,
      ...structuredClone(input),
      emitted_at,
    };
    this.captured.push(entry);
    return entry.id;
  }

  /** A copy of everything emitted, in order. */
  entries(): LedgerEntry[] {
    return structuredClone(this.captured);
  }

  /** Entries of one kind, in order. */
  byKind(kind: Kind): LedgerEntry[] {
    return this.entries().filter((e) => e.kind === kind);
  }

  /** Entries of one family (vm.compute, vm.storage, snap.storage), in order. */
  byFamily(family: Family): LedgerEntry[] {
    return this.entries().filter((e) => describeKind(e.kind)?.family === family);
  }

  /** Entries about one resource: a VM (by vm_id, any family) or a snapshot (by snapshot_id). */
  forResource(id: string): LedgerEntry[] {
    return this.entries().filter((e) => e.vm_id === id || e.snapshot_id === id);
  }

  /** Just the kinds, in order: handy for `expect(rec.kinds()).toEqual([...])`. */
  kinds(): Kind[] {
    return this.captured.map((e) => e.kind);
  }

  clear(): void {
    this.captured.length = 0;
  }

  async flush(): Promise<void> {}
  async close(): Promise<void> {}

  stats(): RecorderStats {
    return { written: this.captured.length, droppedInvalid: 0, droppedWrite: 0, rotations: 0 };
  }
}
