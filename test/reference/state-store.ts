/**
 * The consumer's persistent state: what makes a run incremental (objects already read, one record
 * per entry id with its kept copy) and what makes it honest across runs (the watermark,
 * which never moves back, and every final row as published, so a change becomes a revision).
 *
 * A state file that exists but cannot be read fails the run (fail closed, like multica's guard):
 * starting over silently would re-publish every hour as if nothing had been published.
 */
import * as fs from 'node:fs';
import * as readline from 'node:readline';
import { writeNdjsonAtomic } from '../../sink/atomic-file.js';
import { MAX_FINDINGS, type InvalidLineFinding } from '../../sink/consumer/findings.js';
import { StateFileError } from '../../sink/consumer/state-error.js';
import type { HourlyRow } from '../../sink/consumer/types.js';
import type { IdRecord } from './ingest.js';
import type { KnownProgress } from './watermark.js';

/**
 * Version 3 (billing rules v2) keeps one record per entry id, the full history: a stop may end an
 * interval at any distance in the past, and the kept copy of an id may change when a later run
 * brings a copy from an earlier location. Version 2 (rules v1) folded old events into checkpoints,
 * so it cannot be carried over entry by entry: a v2 state is migrated by keeping what was published
 * (watermark, published rows, revisions) and re-reading every object once (see loadState).
 * Both are ndjson: a header line, one line per record, an end line with the record count, so the
 * file is not bounded by V8's 512 MiB string limit.
 */
export const STATE_VERSION = 3;

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

export interface ConsumerState {
  v: typeof STATE_VERSION;
  /** The source this state belongs to (a state pointed at another bucket would skip its objects). */
  source: string;
  /** epoch ms; null before the first run. Never decreases. */
  watermark: number | null;
  /** epoch ms: watermark - retain of the last run; a start or baseline arriving later before it is too late. */
  horizon: number | null;
  /**
   * Set when this state was migrated from version 2: the next run re-reads every object, and what
   * it reads is not "late" (it was read before, under the old rules).
   */
  migrated_from?: number;
  /** Ledger objects read: name -> valid entries and invalid lines in it. */
  objects: Record<string, { entries: number; invalid: number }>;
  /** Quarantine objects counted: name -> lines. */
  quarantine: Record<string, number>;
  /** One record per entry id ever read. */
  entries: Map<string, IdRecord>;
  /** Last usable progress of each node (fail closed when a later read fails). */
  nodes: Record<string, KnownProgress>;
  /** Final hourly rows as published, by row key (`<hour ms>|<identity>`, see hourly-rollup.ts). */
  published: Record<string, PublishedValue>;
  /** Every revision ever emitted, in order (revisions.ndjson). */
  revisions: HourlyRow[];
  /** Invalid lines are a property of an object, read once: cumulative. */
  invalid_lines: number;
  invalid_findings: InvalidLineFinding[];
}

export { StateFileError };

export function emptyState(source: string): ConsumerState {
  return { v: STATE_VERSION, source, watermark: null, horizon: null, objects: {}, quarantine: {}, entries: new Map(), nodes: {}, published: {}, revisions: [], invalid_lines: 0, invalid_findings: [] };
}

type Header = Pick<ConsumerState, 'v' | 'source' | 'watermark' | 'horizon' | 'migrated_from' | 'invalid_lines' | 'invalid_findings'>;

/** One line of the state file after the header: a tag, then the record. */
type StateLine =
  | ['object', string, ConsumerState['objects'][string]]
  | ['quarantine', string, number]
  | ['entry', IdRecord]
  | ['node', string, KnownProgress]
  | ['published', string, PublishedValue]
  | ['revision', HourlyRow]
  | ['end', number];

function* stateLines(state: ConsumerState): Generator<Header | StateLine> {
  const { v, source, watermark, horizon, migrated_from, invalid_lines, invalid_findings } = state;
  yield { v, source, watermark, horizon, ...(migrated_from === undefined ? {} : { migrated_from }), invalid_lines, invalid_findings };
  let n = 0;
  for (const [k, o] of Object.entries(state.objects)) yield (n++, ['object', k, o]);
  for (const [k, q] of Object.entries(state.quarantine)) yield (n++, ['quarantine', k, q]);
  for (const r of state.entries.values()) yield (n++, ['entry', r]);
  for (const [k, p] of Object.entries(state.nodes)) yield (n++, ['node', k, p]);
  for (const [k, p] of Object.entries(state.published)) yield (n++, ['published', k, p]);
  for (const r of state.revisions) yield (n++, ['revision', r]);
  // The count lets a reader tell a complete file from a cut one.
  yield ['end', n];
}

/** Version 2's lines that survive a migration: what was published. */
const V2_KEPT = new Set(['published', 'revision', 'end']);

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
  let migrating = false;
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
        const h = value as (Omit<Partial<Header>, 'v'> & { v?: unknown }) | null;
        if (typeof h !== 'object' || h === null || (h.v !== STATE_VERSION && h.v !== 2)) {
          throw new StateFileError(`state file ${file} has version ${JSON.stringify(h?.v)}; this consumer understands versions 2 and ${STATE_VERSION}`);
        }
        if (h.source !== source) throw new StateFileError(`state file ${file} belongs to source ${h.source}, not ${source}; use a separate --state (or --out) per source`);
        if (h.v === 2) {
          // Rules v1 folded old events away: keep what was published, re-read every object under v2.
          migrating = true;
          state = { ...emptyState(source), watermark: typeof h.watermark === 'number' ? h.watermark : null, migrated_from: 2 };
        } else {
          state = { ...emptyState(source), ...(h as Header) };
        }
        continue;
      }
      if (ended) throw broken(`has lines after its end (line ${lineNo})`);
      const rec = value as StateLine;
      if (migrating && !V2_KEPT.has(rec[0])) {
        records++;
        continue;
      }
      switch (rec[0]) {
        case 'object': state.objects[rec[1]] = rec[2]; break;
        case 'quarantine': state.quarantine[rec[1]] = rec[2]; break;
        case 'entry': state.entries.set(rec[1].e.id, rec[1]); break;
        case 'node': state.nodes[rec[1]] = rec[2]; break;
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
