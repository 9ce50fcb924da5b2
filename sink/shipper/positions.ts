import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import type { Logger } from 'pino';
import type { WriterProgress } from '../layout.js';
import { writeFileAtomic } from '../atomic-file.js';

/** What the shipper knows about one segment. Keyed by segment name: names never change. */
export interface SegmentPosition {
  /** Every byte before this offset is confirmed stored at the destination. */
  position: number;
  /** Object-name generation; bumped when the segment's bytes were replaced underneath us. */
  gen: number;
  /** File identity when the position was taken; a different one means the file was replaced. */
  dev: number;
  ino: number;
  /** sha256 (hex) of the first `headLen` bytes: catches a file rewritten in place. */
  headLen: number;
  headHash: string;
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

/**
 * The shipper's crash-safe memory: `<state-dir>/positions.json`. Written only after the destination
 * confirmed what it records (temp + fsync + rename + fsync dir). A store that cannot be read is set
 * aside, never trusted: the shipper then reconciles every segment against the destination.
 */
export class PositionStore {
  readonly file: string;
  state: ShipperState = emptyState();
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

  async save(): Promise<void> {
    await writeFileAtomic(this.file, JSON.stringify(this.state));
  }
}
