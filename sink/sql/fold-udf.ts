/**
 * `metering_fold`: contract v2's per-resource machine (sink/consumer/timeline-fold.ts) as a SQL
 * function of one resource's events, ARRAY_AGG'd in no order (it sorts them: meteringFold). The
 * machine itself is not rewritten for SQL: DuckDB calls `meteringFold` as a JavaScript scalar
 * function, and the BigQuery UDF body is the source of the functions it calls. This file only
 * names the SQL types and renames the output fields away from SQL keywords (`end`, `start`).
 *
 * Numbers cross as FLOAT64 (BigQuery's JavaScript UDFs take no INT64): epoch ms, seq numbers and byte
 * counts are below 2^53, so they are exact, and the SQL casts them back to BIGINT.
 */
import { compareFoldEvents, foldTimeline, type FoldEvent, type FoldResult, type FoldState } from '../consumer/timeline-fold.js';

export type SqlFieldType = 'string' | 'float' | 'bool';

/** The fold's input event, as a SQL struct (the order of the fields is the struct's). */
export const FOLD_EVENT_FIELDS: readonly (readonly [string, SqlFieldType])[] = [
  ['id', 'string'],
  ['t', 'float'],
  ['node', 'string'],
  ['writer', 'string'],
  ['seq', 'float'],
  ['phase', 'string'],
  ['reason', 'string'],
  ['hypervisor', 'string'],
  ['cpu', 'float'],
  ['mem_bytes', 'float'],
  ['storage_bytes', 'float'],
];

export const FOLD_INTERVAL_FIELDS: readonly (readonly [string, SqlFieldType])[] = [
  ['start_ms', 'float'],
  ['node', 'string'],
  ['hypervisor', 'string'],
  ['cpu', 'float'],
  ['mem_bytes', 'float'],
  ['storage_bytes', 'float'],
  ['open_reason', 'string'],
  ['baseline', 'bool'],
  ['start_event_id', 'string'],
  ['end_ms', 'float'],
  ['close_reason', 'string'],
  ['end_event_id', 'string'],
  ['last_evidence_ms', 'float'],
];

export const FOLD_ANOMALY_FIELDS: readonly (readonly [string, SqlFieldType])[] = [
  ['anomaly_type', 'string'],
  ['event_id', 'string'],
  ['node', 'string'],
  ['t_ms', 'float'],
];

export interface SqlFoldInterval {
  start_ms: number;
  node: string;
  hypervisor: string | null;
  cpu: number;
  mem_bytes: number;
  storage_bytes: number;
  open_reason: string;
  baseline: boolean;
  start_event_id: string;
  end_ms: number | null;
  close_reason: string | null;
  end_event_id: string | null;
  last_evidence_ms: number;
}

/** The fold's state (FoldState) under the SQL field names: `open` is a FOLD_INTERVAL_FIELDS struct or null. */
export const FOLD_STATE_FIELDS: readonly (readonly [string, SqlFieldType])[] = [
  ['handed_from', 'string'],
  ['last_was_stop', 'bool'],
];

export interface SqlFoldState {
  open: SqlFoldInterval | null;
  handed_from: string | null;
  last_was_stop: boolean;
}

/**
 * What `metering_fold` returns: one flat list of rows, `kind` saying which the row is (`interval`,
 * `anomaly`, or the one `state` row a resource ends in), each with only its kind's fields set.
 * Flat, so a fold step is one statement that unnests it once into one table (rules/40), and no
 * table keeps a resource's whole history in one nested value.
 */
export const FOLD_ROW_FIELDS: readonly (readonly [string, SqlFieldType])[] = [
  ['kind', 'string'],
  ...FOLD_INTERVAL_FIELDS,
  ...FOLD_ANOMALY_FIELDS.filter(([n]) => n !== 'node'), // an anomaly's node goes in the interval's column
  ...FOLD_STATE_FIELDS,
];

/** The names of FOLD_ROW_FIELDS (toSqlRows' argument: the UDF source cannot import them). */
export const FOLD_ROW_NAMES: readonly string[] = FOLD_ROW_FIELDS.map(([n]) => n);

export type SqlFoldRow = { kind: 'interval' | 'anomaly' | 'state' } & { [field: string]: string | number | boolean | null };

/**
 * The fold's result as `metering_fold`'s rows, under the SQL field names (FOLD_ROW_FIELDS; `end` and
 * `start` are SQL keywords). Self-contained (it is shipped as UDF source too), so the field names
 * come in as an argument (FOLD_ROW_NAMES): every row has all of them, null where not its kind's.
 */
export function toSqlRows(r: FoldResult, names: readonly string[]): SqlFoldRow[] {
  function blank(kind: 'interval' | 'anomaly' | 'state'): SqlFoldRow {
    const row: SqlFoldRow = { kind };
    for (const f of names) if (f !== 'kind') row[f] = null;
    return row;
  }
  const rows: SqlFoldRow[] = [];
  for (const i of r.intervals) {
    const row = blank('interval');
    row.start_ms = i.start;
    row.node = i.node;
    row.hypervisor = i.hypervisor;
    row.cpu = i.cpu;
    row.mem_bytes = i.mem_bytes;
    row.storage_bytes = i.storage_bytes;
    row.open_reason = i.open_reason;
    row.baseline = i.baseline;
    row.start_event_id = i.start_event_id;
    row.end_ms = i.end;
    row.close_reason = i.close_reason;
    row.end_event_id = i.end_event_id;
    row.last_evidence_ms = i.last_evidence;
    rows.push(row);
  }
  for (const a of r.anomalies) {
    const row = blank('anomaly');
    row.anomaly_type = a.type;
    row.event_id = a.event_id;
    row.node = a.node;
    row.t_ms = a.t;
    rows.push(row);
  }
  const state = blank('state');
  state.handed_from = r.state.handed_from;
  state.last_was_stop = r.state.last_was_stop;
  rows.push(state);
  return rows;
}

/** A state from SQL (a resource's stored state and open interval) as the fold's. Self-contained (UDF source). */
export function fromSqlState(s: SqlFoldState | null | undefined): FoldState | null {
  if (s === null || s === undefined) return null;
  const o = s.open;
  return {
    open:
      o === null || o === undefined
        ? null
        : {
            start: o.start_ms,
            node: o.node,
            hypervisor: o.hypervisor,
            cpu: o.cpu,
            mem_bytes: o.mem_bytes,
            storage_bytes: o.storage_bytes,
            open_reason: o.open_reason,
            baseline: o.baseline,
            start_event_id: o.start_event_id,
            end: null,
            close_reason: null,
            end_event_id: null,
            last_evidence: o.last_evidence_ms,
          },
    handed_from: s.handed_from === undefined ? null : s.handed_from,
    last_was_stop: s.last_was_stop === true,
  };
}

/**
 * The body of `metering_fold` in both engines: sorts a resource's events into the fold's order
 * (compareFoldEvents, the order the reference model folds in), folds them from the stored state and
 * returns the flat rows. The order is set here, not by the rules' ARRAY_AGG: DuckDB's ordered
 * aggregate keeps a sort buffer of a whole vector (2,048 rows of every column) per group, so a fold
 * step over ~650 VMs of ~200 events each took over 300 MiB and ran a 100 M entry backlog out of
 * memory; sorting ~200 events that mostly arrive in order costs the JavaScript thread next to nothing.
 * It sorts `events` in place. The BigQuery body writes these two lines out (bigQueryFoldFunction).
 */
export function meteringFold(state: SqlFoldState | null, events: FoldEvent[], names: readonly string[]): SqlFoldRow[] {
  events.sort(compareFoldEvents);
  return toSqlRows(foldTimeline(events, fromSqlState(state)), names);
}

const BQ_TYPE: Record<SqlFieldType, string> = { string: 'STRING', float: 'FLOAT64', bool: 'BOOL' };
const bqStruct = (fields: readonly (readonly [string, SqlFieldType])[]): string => `STRUCT<${fields.map(([n, t]) => `${n} ${BQ_TYPE[t]}`).join(', ')}>`;

const bqState = (): string => `STRUCT<open ${bqStruct(FOLD_INTERVAL_FIELDS)}, ${FOLD_STATE_FIELDS.map(([n, t]) => `${n} ${BQ_TYPE[t]}`).join(', ')}>`;

/**
 * A function's source as a plain declaration. Transpilers may wrap named inner functions with a
 * `__name(fn, "name")` helper (esbuild's keepNames); the UDF gets an identity shim for it.
 */
function sourceOf(fn: (...args: never[]) => unknown): string {
  const text = fn.toString();
  return /\b__name\(/.test(text) ? `var __name = function (f) { return f; };\n${text}` : text;
}

/** `CREATE TEMP FUNCTION metering_fold(...)`: the BigQuery UDF, its body rendered from the one fold. */
export function bigQueryFoldFunction(): string {
  // meteringFold's two lines, written out: its own source names foldTimeline and compareFoldEvents
  // as imports, which a transformer may rename (vitest's does); these are declared in the body.
  const call = `events.sort(compareFoldEvents);\nreturn toSqlRows(foldTimeline(events, fromSqlState(state)), ${JSON.stringify(FOLD_ROW_NAMES)});`;
  const body = [sourceOf(compareFoldEvents), sourceOf(foldTimeline), sourceOf(toSqlRows), sourceOf(fromSqlState), call].join('\n');
  if (body.includes('"""')) throw new Error('the fold source contains """ and cannot be quoted as a BigQuery UDF body');
  return [
    '-- Contract v2 per-resource machine: the body is sink/consumer/timeline-fold.ts, as shipped.',
    `CREATE TEMP FUNCTION metering_fold(state ${bqState()}, events ARRAY<${bqStruct(FOLD_EVENT_FIELDS)}>)`,
    `RETURNS ARRAY<${bqStruct(FOLD_ROW_FIELDS)}>`,
    'LANGUAGE js AS r"""',
    body,
    '""";',
  ].join('\n');
}
