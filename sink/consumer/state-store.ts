/**
 * The consumer's persistent state: what makes a run incremental (objects already read, the
 * per-resource timeline still able to change) and what makes it honest across runs (the watermark,
 * which never moves back, and every final row as published, so a change becomes a revision).
 *
 * A state file that exists but cannot be read fails the run (fail closed, like multica's guard):
 * starting over silently would re-publish every hour as if nothing had been published.
 */
import * as fs from 'node:fs/promises';
import type { Family } from '../../src/index.js';
import { writeFileAtomic } from '../atomic-file.js';
import type { TimelineState } from './resource-timeline.js';
import type { WriterCoverage } from './seq-tracker.js';
import type { HourlyRow, LineLocation, TimelineAnomaly, TimelineEvent, UsageInterval } from './types.js';

export const STATE_VERSION = 1;

/** One resource whose timeline can still change: a folded prefix (`base`) plus the events after it. */
export interface ResourceRecord {
  family: Family;
  resource_id: string;
  base: TimelineState;
  /** Sorted by compareEvents; all at or after the state's horizon. */
  events: TimelineEvent[];
}

/** A final row as last published. */
export interface PublishedRow {
  version: number;
  ms: number;
  revises: number | null;
  previous_ms: number | null;
}

/** As stored: a bare number is `ms` of version 1 never revised (the common case, kept small). */
export type PublishedValue = PublishedRow | number;

export function publishedRow(v: PublishedValue): PublishedRow {
  return typeof v === 'number' ? { version: 1, ms: v, revises: null, previous_ms: null } : v;
}

export interface InvalidLineFinding extends LineLocation {
  length: number;
  reason: string;
}

export interface EntryFinding extends LineLocation {
  id: string;
  node: string;
  emitted_at: string;
}

/** Findings lists keep at most this many items each (the counts are always exact). */
export const MAX_FINDINGS = 1000;

export interface ConsumerState {
  v: typeof STATE_VERSION;
  /** The source this state belongs to (a state pointed at another bucket would skip its objects). */
  source: string;
  /** epoch ms; null before the first run. Never decreases. */
  watermark: number | null;
  /** epoch ms: events before it were folded into `base`; an event arriving later before it is too late. */
  horizon: number | null;
  /** Ledger objects read: name -> valid entries and invalid lines in it. */
  objects: Record<string, { entries: number; invalid: number }>;
  /** Quarantine objects counted: name -> lines. */
  quarantine: Record<string, number>;
  writers: Record<string, WriterCoverage>;
  /** key: `${family}\u0000${resource_id}` */
  resources: Record<string, ResourceRecord>;
  /** Closed intervals folded out of `resources` (they can no longer change). */
  frozen_intervals: UsageInterval[];
  frozen_anomalies: TimelineAnomaly[];
  /** Final hourly rows as published, by row key (`<hour ms>|<identity>`, see hourly-rollup.ts). */
  published: Record<string, PublishedValue>;
  /** Every revision ever emitted, in order (revisions.ndjson). */
  revisions: HourlyRow[];
  totals: {
    entries_read: number;
    duplicates: number;
    conflicting_duplicates: number;
    late_entries: number;
    too_late_entries: number;
    /** Added after the first state version: absent in older state files. */
    clock_skew_entries?: number;
    invalid_lines: number;
    node_mismatches: number;
  };
  findings: {
    invalid_lines: InvalidLineFinding[];
    late_entries: EntryFinding[];
    too_late_entries: EntryFinding[];
    clock_skew_entries?: EntryFinding[];
    conflicting_duplicates: EntryFinding[];
    node_mismatches: EntryFinding[];
  };
}

export class StateFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StateFileError';
  }
}

export function emptyState(source: string): ConsumerState {
  return {
    v: STATE_VERSION,
    source,
    watermark: null,
    horizon: null,
    objects: {},
    quarantine: {},
    writers: {},
    resources: {},
    frozen_intervals: [],
    frozen_anomalies: [],
    published: {},
    revisions: [],
    totals: { entries_read: 0, duplicates: 0, conflicting_duplicates: 0, late_entries: 0, too_late_entries: 0, clock_skew_entries: 0, invalid_lines: 0, node_mismatches: 0 },
    findings: { invalid_lines: [], late_entries: [], too_late_entries: [], clock_skew_entries: [], conflicting_duplicates: [], node_mismatches: [] },
  };
}

/** Loads the state, or a fresh one if the file does not exist. Throws StateFileError for anything unusable. */
export async function loadState(file: string, source: string): Promise<ConsumerState> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return emptyState(source);
    throw new StateFileError(`cannot read state file ${file}: ${(err as Error).message}`);
  }
  let value: ConsumerState;
  try {
    value = JSON.parse(text) as ConsumerState;
  } catch (err) {
    throw new StateFileError(`state file ${file} is not valid JSON (${(err as Error).message}); restore it from a backup, or move it away to rebuild from scratch (published rows would be re-published as version 1)`);
  }
  if (typeof value !== 'object' || value === null || value.v !== STATE_VERSION) {
    throw new StateFileError(`state file ${file} has version ${JSON.stringify((value as { v?: unknown } | null)?.v)}; this consumer understands version ${STATE_VERSION}`);
  }
  if (value.source !== source) {
    throw new StateFileError(`state file ${file} belongs to source ${value.source}, not ${source}; use a separate --state (or --out) per source`);
  }
  return value;
}

export async function saveState(file: string, state: ConsumerState): Promise<void> {
  await writeFileAtomic(file, JSON.stringify(state));
}

export function pushFinding<T>(list: T[], item: T): void {
  if (list.length < MAX_FINDINGS) list.push(item);
}
