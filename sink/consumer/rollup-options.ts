/** What a rollup run takes and reports, whatever runs it: options, defaults, the run's settings. */
import type { Logger } from '../../src/index.js';
import type { Destination } from '../destinations/destination.js';

export const DEFAULT_GRACE_MS = 5 * 60_000;
export const DEFAULT_STALE_AFTER_MS = 6 * 3_600_000;
export const DEFAULT_RETAIN_MS = 7 * 86_400_000;
export const DEFAULT_MAX_SKEW_MS = 30 * 86_400_000;

export interface RollupProgress {
  phase: 'list' | 'read' | 'compute' | 'write';
  objectsDone: number;
  objectsTotal: number;
  entries: number;
}

export interface RollupOptions {
  /** `gs://bucket/prefix`, `file:///dir` or a directory path. */
  source: string;
  /** An already opened source (library use, tests); `source` is then only its name in state and report. */
  destination?: { destination: Destination; prefix: string };
  /** Directory for the outputs (hourly/, intervals/, revisions/ partitions and report.json) and, by default, the state. None: nothing is written. */
  out?: string;
  /** State database. Default `<out>/state.duckdb`; without `out` and `state` the run keeps no state. */
  state?: string;
  /** Subtracted from the watermark (late uploads in flight). Default 5 minutes. */
  graceMs?: number;
  /** A node whose last report is older than this stops holding the watermark. Default 6 hours. */
  staleAfterMs?: number;
  /** A start or baseline arriving with emitted_at before the last watermark minus this is too late (not billed). Default 7 days. */
  retainMs?: number;
  /**
   * An entry whose emitted_at is further than this from its segment's creation time is a broken
   * clock's: reported as clock_skew_entries, not billed. Default 30 days.
   */
  maxSkewMs?: number;
  /** The consumer's clock: the one trusted clock for staleness and the watermark cap. Default: now. */
  now?: Date | number;
  logger?: Logger;
  onProgress?: (p: RollupProgress) => void;
  /** Objects fetched at once. Default 8. */
  concurrency?: number;
}

export interface RunSummary {
  objects_read: number;
  entries_read: number;
  new_revisions: number;
  watermark: string;
}


function toTime(now: Date | number | undefined): number {
  if (now === undefined) return Date.now();
  const t = now instanceof Date ? now.getTime() : now;
  if (!Number.isFinite(t)) throw new Error(`invalid now: ${String(now)}`);
  return t;
}

/** A run's clock and durations, defaults applied and checked: the same for every engine. */
export interface RollupSettings {
  now: number;
  graceMs: number;
  staleAfterMs: number;
  retainMs: number;
  maxSkewMs: number;
}

export function rollupSettings(options: Pick<RollupOptions, 'now' | 'graceMs' | 'staleAfterMs' | 'retainMs' | 'maxSkewMs'>): RollupSettings {
  const settings: RollupSettings = {
    now: toTime(options.now),
    graceMs: options.graceMs ?? DEFAULT_GRACE_MS,
    staleAfterMs: options.staleAfterMs ?? DEFAULT_STALE_AFTER_MS,
    retainMs: options.retainMs ?? DEFAULT_RETAIN_MS,
    maxSkewMs: options.maxSkewMs ?? DEFAULT_MAX_SKEW_MS,
  };
  for (const [name, v] of [['grace', settings.graceMs], ['stale-after', settings.staleAfterMs], ['retain', settings.retainMs], ['max-skew', settings.maxSkewMs]] as const) {
    if (!Number.isSafeInteger(v) || v < 0) throw new Error(`${name} must be a non-negative integer of milliseconds, got ${v}`);
  }
  return settings;
}

