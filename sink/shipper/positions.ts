import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import type { Logger } from 'pino';
import type { WriterProgress } from '../layout.js';
import { writeFileAtomic } from '../atomic-file.js';
import type { SegmentFingerprint } from './segment-identity.js';
import { notAfter } from './node-progress.js';

/** What the shipper knows about one segment. Keyed by segment name: names never change. */
export interface SegmentPosition extends SegmentFingerprint {
  /** Every byte before this offset is confirmed stored at the destination. */
  position: number;
  /** Object-name generation; bumped when the segment's bytes were replaced underneath us. */
  gen: number;
  /** Non-active, quiet and fully shipped: only stat()ed from now on. */
  sealed: boolean;
}

export interface ShipperState {
  v: 1;
  segments: Record<string, SegmentPosition>;
  /** Per writer, the highest seq shipped (survives restarts for the node progress object). */
  writers: Record<string, WriterProgress>;
  /** Last `complete_through` reported; never moves backwards. */
  complete_through?: string;
}

export const POSITIONS_FILE = 'positions.json';

function emptyState(): ShipperState {
  return { v: 1, segments: {}, writers: {} };
}

function isSegmentPosition(v: unknown): v is SegmentPosition {
  if (typeof v !== 'object' || v === null) return false;
  const p = v as Record<string, unknown>;
  const nonNegInt = (x: unknown): boolean => Number.isSafeInteger(x) && (x as number) >= 0;
  return (
    nonNegInt(p.position) &&
    nonNegInt(p.gen) &&
    typeof p.dev === 'number' &&
    typeof p.ino === 'number' &&
    nonNegInt(p.headLen) &&
    typeof p.headHash === 'string' &&
    (p.tailLen === undefined || nonNegInt(p.tailLen)) &&
    (p.tailHash === undefined || typeof p.tailHash === 'string') &&
    typeof p.sealed === 'boolean'
  );
}

/** Checks a parsed store; returns a reason when it cannot be trusted. */
function problemWith(v: unknown): string | undefined {
  if (typeof v !== 'object' || v === null) return 'not an object';
  const s = v as Record<string, unknown>;
  if (s.v !== 1) return `unknown version ${JSON.stringify(s.v)}`;
  if (typeof s.segments !== 'object' || s.segments === null) return 'no segments';
  for (const [name, pos] of Object.entries(s.segments)) if (!isSegmentPosition(pos)) return `bad entry for ${name}`;
  if (typeof s.writers !== 'object' || s.writers === null) return 'no writers';
  return undefined;
}

/** Reads a store for a report (`metering status`): undefined when absent, a problem when unreadable. */
export async function readPositions(stateDir: string): Promise<{ state?: ShipperState; problem?: string }> {
  let text: string;
  try {
    text = await fsp.readFile(path.join(stateDir, POSITIONS_FILE), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    return { problem: `position store unreadable: ${(err as Error).message}` };
  }
  try {
    const parsed = JSON.parse(text) as unknown;
    const problem = problemWith(parsed);
    return problem ? { problem: `position store unreadable: ${problem}` } : { state: parsed as ShipperState };
  } catch (err) {
    return { problem: `position store unreadable: ${(err as Error).message}` };
  }
}

/**
 * The shipper's crash-safe memory: `<state-dir>/positions.json`. Every change goes through a method
 * that saves (temp + fsync + rename + fsync dir) before it returns, and only after the destination
 * confirmed what it records. A store that cannot be read is set aside, never trusted: the shipper
 * then reconciles every segment against the destination.
 */
export class PositionStore {
  readonly file: string;
  private state: ShipperState = emptyState();
  /** True when the store on disk was unreadable and every position must be re-derived. */
  recovered = false;

  constructor(
    readonly stateDir: string,
    private readonly log: Logger,
  ) {
    this.file = path.join(stateDir, POSITIONS_FILE);
  }

  async load(): Promise<void> {
    let text: string;
    try {
      text = await fsp.readFile(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    let parsed: unknown;
    let problem: string | undefined;
    try {
      parsed = JSON.parse(text);
      problem = problemWith(parsed);
    } catch (err) {
      problem = `not JSON (${(err as Error).message})`;
    }
    if (problem === undefined) {
      this.state = parsed as ShipperState;
      return;
    }
    // Keep the bad file for a post-mortem; reconciliation with the destination replaces it.
    const aside = `${this.file}.corrupt-${Date.now()}`;
    await fsp.rename(this.file, aside).catch(() => {});
    this.log.error({ file: this.file, movedTo: aside, problem }, 'shipper: position store is corrupt; re-deriving every position from the destination (nothing is skipped; existing objects are not uploaded twice)');
    this.recovered = true;
  }

  get(name: string): Readonly<SegmentPosition> | undefined {
    return this.state.segments[name];
  }

  names(): string[] {
    return Object.keys(this.state.segments);
  }

  entries(): [string, Readonly<SegmentPosition>][] {
    return Object.entries(this.state.segments);
  }

  /** Starts (or restarts, under a new generation) a segment at `pos`. */
  async begin(name: string, pos: SegmentPosition): Promise<void> {
    this.state.segments[name] = { ...pos };
    await this.save();
  }

  /**
   * Bytes up to `end` are confirmed stored. `fingerprint` is the file's at `end`; `writers` and
   * `lastEmittedAt` come from the batch that got there (none when a stored range was skipped).
   */
  async advance(name: string, end: number, fingerprint: SegmentFingerprint, writers?: ReadonlyMap<string, { seq: number; emitted_at: string }>, lastEmittedAt?: string): Promise<void> {
    const pos = this.state.segments[name];
    if (!pos) throw new Error(`no position for ${name}`);
    if (end < pos.position) throw new Error(`position of ${name} would move back from ${pos.position} to ${end}`);
    Object.assign(pos, fingerprint, { position: end, sealed: false });
    for (const [w, p] of writers ?? []) {
      const old = this.state.writers[w];
      if (!old || p.seq > old.last_seq) this.state.writers[w] = { last_seq: p.seq, last_emitted_at: p.emitted_at };
    }
    if (lastEmittedAt) this.moveCompleteThrough(lastEmittedAt);
    await this.save();
  }

  /** A late append to a sealed segment: tail it again (saved with the next advance). */
  unseal(name: string): void {
    const pos = this.state.segments[name];
    if (pos) pos.sealed = false;
  }

  async seal(name: string): Promise<void> {
    const pos = this.state.segments[name];
    if (!pos || pos.sealed) return;
    pos.sealed = true;
    await this.save();
  }

  async forget(name: string): Promise<void> {
    if (!(name in this.state.segments)) return;
    delete this.state.segments[name];
    await this.save();
  }

  get completeThrough(): string | undefined {
    return this.state.complete_through;
  }

  /** Moves complete_through forward (never back); true if it moved. Saved with the next save. */
  moveCompleteThrough(candidate: string | undefined, now = new Date()): boolean {
    // Capped by our clock, so a future-dated line cannot pin complete_through ahead (see notAfter).
    if (candidate) candidate = notAfter(candidate, now);
    const cur = this.state.complete_through;
    if (!candidate || (cur && candidate <= cur)) return false;
    this.state.complete_through = candidate;
    return true;
  }

  /** Per-writer progress, dropping writers not heard of since `horizon` (short-lived CLI writers). */
  writerProgress(horizon: string): Record<string, WriterProgress> {
    for (const [w, p] of Object.entries(this.state.writers)) if (p.last_emitted_at < horizon) delete this.state.writers[w];
    return { ...this.state.writers };
  }

  async save(): Promise<void> {
    await writeFileAtomic(this.file, JSON.stringify(this.state));
  }
}
