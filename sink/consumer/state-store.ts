/**
 * The consumer's persistent state: what makes a run incremental (objects already read, the
 * per-resource timeline still able to change) and what makes it honest across runs (the watermark,
 * which never moves back, and every final row as published, so a change becomes a revision).
 *
 * A state file that exists but cannot be read fails the run (fail closed, like multica's guard):
 * starting over silently would re-publish every hour as if nothing had been published.
 */
import * as fs from 'node:fs';
import * as readline from 'node:readline';
import type { Family } from '../../src/index.js';
import { writeNdjsonAtomic } from '../atomic-file.js';
import type { TimelineState } from './resource-timeline.js';
import type { WriterCoverage } from './seq-tracker.js';
import type { HourlyRow, LineLocation, TimelineAnomaly, TimelineEvent, UsageInterval } from './types.js';

/**
 * Version 2 is ndjson: a header line, one line per record, and an end line with the counts. Version 1
 * was one JSON document, which V8 cannot build or parse beyond 512 MiB (its string limit): a state of
 * about a million intervals could not be saved.
 */
export const STATE_VERSION = 2;

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

type Header = Pick<ConsumerState, 'v' | 'source' | 'watermark' | 'horizon' | 'totals' | 'findings'>;

/** One line of the state file after the header: a tag, then the record. */
type StateLine =
  | ['object', string, ConsumerState['objects'][string]]
  | ['quarantine', string, number]
  | ['writer', string, WriterCoverage]
  | ['resource', string, ResourceRecord]
  | ['frozen_interval', UsageInterval]
  | ['frozen_anomaly', TimelineAnomaly]
  | ['published', string, PublishedValue]
  | ['revision', HourlyRow]
  | ['end', number];

function* stateLines(state: ConsumerState): Generator<Header | StateLine> {
  const { v, source, watermark, horizon, totals, findings } = state;
  yield { v, source, watermark, horizon, totals, findings };
  let n = 0;
  for (const [k, o] of Object.entries(state.objects)) yield (n++, ['object', k, o]);
  for (const [k, q] of Object.entries(state.quarantine)) yield (n++, ['quarantine', k, q]);
  for (const [k, w] of Object.entries(state.writers)) yield (n++, ['writer', k, w]);
  for (const [k, r] of Object.entries(state.resources)) yield (n++, ['resource', k, r]);
  for (const i of state.frozen_intervals) yield (n++, ['frozen_interval', i]);
  for (const a of state.frozen_anomalies) yield (n++, ['frozen_anomaly', a]);
  for (const [k, p] of Object.entries(state.published)) yield (n++, ['published', k, p]);
  for (const r of state.revisions) yield (n++, ['revision', r]);
  // The count lets a reader tell a complete file from a cut one.
  yield ['end', n];
}

/** Loads the state, or a fresh one if the file does not exist. Throws StateFileError for anything unusable. */
export async function loadState(file: string, source: string): Promise<ConsumerState> {
  try {
    await fs.promises.access(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return emptyState(source);
    throw new StateFileError(`cannot read state file ${file}: ${(err as Error).message}`);
  }
  const broken = (why: string): StateFileError =>
    new StateFileError(`state file ${file} ${why}; restore it from a backup, or move it away to rebuild from scratch (published rows would be re-published as version 1)`);
  let state: ConsumerState | undefined;
  let records = 0;
  let ended = false;
  let lineNo = 0;
  // Line by line: the file may be larger than any one string V8 can hold.
  const lines = readline.createInterface({ input: fs.createReadStream(file, { encoding: 'utf8' }), crlfDelay: Infinity });
  try {
    for await (const line of lines) {
      lineNo++;
      let value: unknown;
      try {
        value = JSON.parse(line);
      } catch (err) {
        throw broken(`is not valid JSON at line ${lineNo} (${(err as Error).message})`);
      }
      if (!state) {
        const h = value as Partial<Header> | null;
        if (typeof h !== 'object' || h === null || h.v !== STATE_VERSION) {
          throw new StateFileError(`state file ${file} has version ${JSON.stringify(h?.v)}; this consumer understands version ${STATE_VERSION}`);
        }
        if (h.source !== source) throw new StateFileError(`state file ${file} belongs to source ${h.source}, not ${source}; use a separate --state (or --out) per source`);
        state = { ...emptyState(source), ...(h as Header) };
        continue;
      }
      if (ended) throw broken(`has lines after its end (line ${lineNo})`);
      const rec = value as StateLine;
      switch (rec[0]) {
        case 'object': state.objects[rec[1]] = rec[2]; break;
        case 'quarantine': state.quarantine[rec[1]] = rec[2]; break;
        case 'writer': state.writers[rec[1]] = rec[2]; break;
        case 'resource': state.resources[rec[1]] = rec[2]; break;
        case 'frozen_interval': state.frozen_intervals.push(rec[1]); break;
        case 'frozen_anomaly': state.frozen_anomalies.push(rec[1]); break;
        case 'published': state.published[rec[1]] = rec[2]; break;
        case 'revision': state.revisions.push(rec[1]); break;
        case 'end':
          if (rec[1] !== records) throw broken(`says it holds ${rec[1]} records but has ${records}`);
          ended = true;
          continue;
        default:
          throw broken(`has an unknown record at line ${lineNo}`);
      }
      records++;
    }
  } catch (err) {
    if (err instanceof StateFileError) throw err;
    throw new StateFileError(`cannot read state file ${file}: ${(err as Error).message}`);
  } finally {
    lines.close();
  }
  if (!state) throw broken('is empty');
  if (!ended) throw broken('is cut short (no end line)');
  return state;
}

export async function saveState(file: string, state: ConsumerState): Promise<void> {
  await writeNdjsonAtomic(file, stateLines(state));
}

export function pushFinding<T>(list: T[], item: T): void {
  if (list.length < MAX_FINDINGS) list.push(item);
}
