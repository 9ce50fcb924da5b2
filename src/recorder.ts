import type { EntryInput } from './entry.js';

/** Counters a recorder keeps; exported so a host can put them on its own metrics endpoint. */
export interface RecorderStats {
  /** Entries written to the ledger (or captured). */
  written: number;
  /** Entries refused because they were invalid (unknown kind, missing id, bad shape, bad time). */
  droppedInvalid: number;
  /** Entries lost to a write error (disk full, I/O error) or emitted after close. */
  droppedWrite: number;
  /** Segment rotations this recorder performed. */
  rotations: number;
}

/**
 * Records billable lifecycle events. `emit` is fire-and-forget: it never throws into the caller and
 * never awaits; problems are logged and counted. It returns the entry's id once the entry is written
 * (or captured), undefined when it was dropped.
 */
export interface Recorder {
  emit(entry: EntryInput): string | undefined;
  /** Resolves when everything emitted so far is as durable as the recorder's mode promises (fsync modes: on disk). */
  flush(): Promise<void>;
  /** Flushes, then releases the ledger. Later emits are dropped and counted. */
  close(): Promise<void>;
  stats(): RecorderStats;
}

/** Records nothing. Used when no ledger is configured or the ledger cannot be opened. */
export class NopRecorder implements Recorder {
  emit(_entry: EntryInput): undefined {
    return undefined;
  }
  async flush(): Promise<void> {}
  async close(): Promise<void> {}
  stats(): RecorderStats {
    return { written: 0, droppedInvalid: 0, droppedWrite: 0, rotations: 0 };
  }
}

const sharedNop = new NopRecorder();

/** Lets code hold an optional recorder and call it unconditionally. */
export function orNop(recorder: Recorder | null | undefined): Recorder {
  return recorder ?? sharedNop;
}
