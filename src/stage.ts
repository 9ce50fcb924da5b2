import type { EntryInput } from './entry.js';
import type { Recorder } from './recorder.js';

/**
 * Collects entries while a DB update runs and emits them only after it committed, outside the lock:
 * the ledger write never lengthens the lock, and an update that rolled back emits nothing.
 *
 *   const stage = new EmitStage(recorder);
 *   await store.update((db) => {
 *     stage.begin();               // a retried closure starts from an empty stage
 *     ...; stage.add(entry);
 *   });
 *   stage.publish();               // after commit; a second publish is a no-op
 */
export class EmitStage {
  private pending: EntryInput[] = [];
  private done = false;

  constructor(private readonly recorder: Recorder) {}

  /** Forget what an earlier attempt of the same closure staged. Call first thing inside the closure. */
  begin(): void {
    this.pending = [];
  }

  add(entry: EntryInput): void {
    if (this.done) throw new Error('EmitStage: add() after publish() or discard()');
    this.pending.push(entry);
  }

  /** Number of entries waiting. */
  get size(): number {
    return this.pending.length;
  }

  /** Emit everything staged, once. Returns the ids written. */
  publish(): string[] {
    if (this.done) return [];
    this.done = true;
    const ids: string[] = [];
    for (const entry of this.pending) {
      const id = this.recorder.emit(entry);
      if (id !== undefined) ids.push(id);
    }
    this.pending = [];
    return ids;
  }

  /** Drop everything staged (the update failed or rolled back). */
  discard(): void {
    this.done = true;
    this.pending = [];
  }
}

/**
 * Runs `update` with a fresh stage and publishes it only if `update` resolves; if it throws, nothing
 * is emitted and the error propagates. `update` should call `stage.begin()` at the start of any
 * closure the database may retry.
 */
export async function emitAfterCommit<T>(recorder: Recorder, update: (stage: EmitStage) => Promise<T> | T): Promise<T> {
  const stage = new EmitStage(recorder);
  let result: T;
  try {
    result = await update(stage);
  } catch (err) {
    stage.discard();
    throw err;
  }
  stage.publish();
  return result;
}
