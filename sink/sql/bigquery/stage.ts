/**
 * The BigQuery engine's loading step as SQL: this run's new ledger objects go into a small table,
 * their lines are read from the raw-line external tables with a LITERAL `dt` filter (the days the
 * new objects fall in, so BigQuery prunes every other day's files), validated and parsed in SQL,
 * and staged as `entries_new` (valid lines, the columns of `entries_new` in 00_state.sql) and
 * `invalid_lines` rows. Everything the SQL takes from outside (names, days, numbers) is checked or
 * quoted here; nothing else builds this SQL.
 *
 * The line check restates the recorder's wire check (src/validate.ts, checkWireEntry) in SQL, its
 * lists of kinds and reasons rendered from src/kinds.ts. It is the one place where BigQuery has its
 * own statement of validity; what it does not check is listed in docs/bigquery.md.
 */
import { ALL_KINDS, ALL_REASONS, DEFAULT_MAX_LINE_BYTES, describeKind, REASONS, WIRE_VERSION } from '../../../src/index.js';
import { START_ONLY_REASONS, STOP_ONLY_REASONS } from '../../../src/kinds.js';
import { tableName } from '../render.js';

export interface NewObject {
  /** Object name, as listed (what `objects.object` and `entries.object` hold). */
  name: string;
  /** `gs://bucket/name`: what BigQuery's _FILE_NAME says for it. */
  uri: string;
  dt: string;
  node: string;
  segCreatedMs: number | undefined;
  gzip: boolean;
}

/** A string literal BigQuery reads back as exactly `s` (raw strings cannot hold every value). */
export function sqlString(s: string): string {
  let out = "'";
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === "'" || ch === '\\') out += `\\${ch}`;
    else if (c < 0x20 || c === 0x7f) out += `\\x${c.toString(16).padStart(2, '0')}`;
    else out += ch;
  }
  return out + "'";
}

const DAY_RE = /^\d{4}-\d{2}-\d{2}$/;

function dateLiteral(day: string): string {
  if (!DAY_RE.test(day) || Number.isNaN(Date.parse(`${day}T00:00:00Z`))) throw new Error(`not a partition day: ${JSON.stringify(day)}`);
  return `DATE '${day}'`;
}

function intLiteral(n: number | undefined | null): string {
  if (n === undefined || n === null) return 'NULL';
  if (!Number.isSafeInteger(n)) throw new Error(`not a safe integer: ${n}`);
  return String(n);
}

/** The days (sorted, distinct) a set of objects falls in: the partition filter of the run. */
export function partitionDays(objects: readonly NewObject[]): string[] {
  return [...new Set(objects.map((o) => o.dt))].sort();
}

/** `dt IN (DATE '…', …)`: literal, so BigQuery prunes the hive partitions before reading a byte. */
export function dtFilter(days: readonly string[]): string {
  if (days.length === 0) throw new Error('internal: a partition filter needs at least one day');
  return `dt IN (${days.map(dateLiteral).join(', ')})`;
}

/** Rows per INSERT … VALUES statement: keeps every statement far below BigQuery's 1 MB query text. */
const VALUES_PER_STATEMENT = 500;

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** INSERT … VALUES statements for `rows` (already rendered tuples), at most VALUES_PER_STATEMENT each. */
export function insertValues(table: string, columns: string, rows: readonly string[]): string[] {
  return chunks(rows, VALUES_PER_STATEMENT).map((part) => `INSERT INTO ${table} (${columns}) VALUES\n${part.join(',\n')}`);
}

const WIRE_FIELDS = ['v', 'id', 'node', 'writer', 'seq', 'kind', 'vm_id', 'snapshot_id', 'source_snapshot_id', 'reason', 'hypervisor', 'shape', 'emitted_at'];
const SHAPE_FIELDS = ['cpu', 'mem_bytes', 'storage_bytes'];
const MAX_ID_LENGTH = 256;
const list = (values: readonly string[]): string => values.map(sqlString).join(', ');

/** Why a parsed line (`j`, NULL when not JSON) is not a valid entry, or NULL: checkWireEntry's order and words. */
function problemExpression(): string {
  const idCheck = (name: string, required: boolean): string[] => [
    ...(required ? [`WHEN j.${name} IS NULL OR JSON_TYPE(j.${name}) = 'null' THEN '${name} is required'`] : []),
    `WHEN j.${name} IS NOT NULL AND JSON_TYPE(j.${name}) <> 'string' THEN '${name} must be a string'`,
    `WHEN JSON_VALUE(j.${name}) = '' THEN '${name} must not be empty'`,
    `WHEN CHAR_LENGTH(JSON_VALUE(j.${name})) > ${MAX_ID_LENGTH} THEN '${name} is longer than ${MAX_ID_LENGTH} characters'`,
    `WHEN REGEXP_CONTAINS(JSON_VALUE(j.${name}), r'[\\x00-\\x1f\\x7f]') THEN '${name} contains a control character'`,
  ];
  const kinds = ALL_KINDS.map((k) => ({ kind: k, ...describeKind(k)! }));
  const ofPhase = (phase: string): string => list(kinds.filter((k) => k.phase === phase).map((k) => k.kind));
  const vmKinds = list(kinds.filter((k) => k.idField === 'vm_id').map((k) => k.kind));
  const snapKinds = list(kinds.filter((k) => k.idField === 'snapshot_id').map((k) => k.kind));
  const stopOnly = list([...STOP_ONLY_REASONS]);
  const startOnly = list([...START_ONLY_REASONS]);
  const kind = 'JSON_VALUE(j.kind)';
  const reason = 'JSON_VALUE(j.reason)';
  const shapeChecks = SHAPE_FIELDS.flatMap((f) => [
    `WHEN j.shape.${f} IS NULL THEN 'shape.${f} is required'`,
    `WHEN JSON_TYPE(j.shape.${f}) <> 'number' OR SAFE.INT64(j.shape.${f}) IS NULL OR ABS(SAFE.INT64(j.shape.${f})) > 9007199254740991 THEN 'shape.${f} must be a safe integer'`,
    `WHEN SAFE.INT64(j.shape.${f}) < 0 THEN 'shape.${f} must not be negative'`,
  ]);
  return [
    'CASE',
    `WHEN BYTE_LENGTH(line) > ${DEFAULT_MAX_LINE_BYTES} THEN 'line longer than ${DEFAULT_MAX_LINE_BYTES} bytes'`,
    "WHEN j IS NULL THEN 'line is not valid JSON'",
    "WHEN JSON_TYPE(j) <> 'object' THEN 'line is not a JSON object'",
    `WHEN j.v IS NULL OR JSON_TYPE(j.v) <> 'number' OR SAFE.INT64(j.v) IS DISTINCT FROM ${WIRE_VERSION} THEN 'unsupported wire version (this reader understands v${WIRE_VERSION})'`,
    ...idCheck('id', true),
    ...idCheck('node', true),
    ...idCheck('writer', true),
    "WHEN j.seq IS NULL OR JSON_TYPE(j.seq) <> 'number' OR SAFE.INT64(j.seq) IS NULL OR SAFE.INT64(j.seq) < 1 OR SAFE.INT64(j.seq) > 9007199254740991 THEN 'seq must be an integer >= 1'",
    `WHEN EXISTS (SELECT 1 FROM UNNEST(JSON_KEYS(j, 1)) AS k WHERE k NOT IN (${list(WIRE_FIELDS)})) THEN 'unknown field'`,
    `WHEN ${kind} IS NULL OR ${kind} NOT IN (${list(ALL_KINDS)}) THEN 'unknown kind'`,
    `WHEN ${reason} IS NULL OR ${reason} NOT IN (${list(ALL_REASONS)}) THEN 'unknown reason'`,
    `WHEN ${kind} IN (${ofPhase('running')}) AND ${reason} <> '${REASONS.BASELINE}' THEN 'running kinds must have reason "baseline"'`,
    `WHEN ${kind} NOT IN (${ofPhase('running')}) AND ${reason} = '${REASONS.BASELINE}' THEN 'reason "baseline" is only for *.running kinds'`,
    `WHEN ${kind} IN (${ofPhase('start')}) AND ${reason} IN (${stopOnly}) THEN 'this reason cannot start an interval'`,
    `WHEN ${kind} IN (${ofPhase('stop')}) AND ${reason} IN (${startOnly}) THEN 'this reason cannot end an interval'`,
    ...idCheck('vm_id', false),
    `WHEN ${kind} IN (${vmKinds}) AND (j.vm_id IS NULL OR JSON_TYPE(j.vm_id) = 'null') THEN 'vm_id is required'`,
    ...idCheck('snapshot_id', false),
    `WHEN ${kind} IN (${snapKinds}) AND (j.snapshot_id IS NULL OR JSON_TYPE(j.snapshot_id) = 'null') THEN 'snapshot_id is required'`,
    ...idCheck('source_snapshot_id', false),
    ...idCheck('hypervisor', false),
    "WHEN j.shape IS NULL OR JSON_TYPE(j.shape) <> 'object' THEN 'shape must be an object {cpu, mem_bytes, storage_bytes}'",
    `WHEN EXISTS (SELECT 1 FROM UNNEST(JSON_KEYS(j.shape, 1)) AS k WHERE k NOT IN (${list(SHAPE_FIELDS)})) THEN 'shape has unknown field'`,
    ...shapeChecks,
    "WHEN JSON_TYPE(j.emitted_at) IS DISTINCT FROM 'string' OR NOT REGEXP_CONTAINS(JSON_VALUE(j.emitted_at), r'^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}\\.\\d{3}Z$') THEN 'emitted_at must be UTC with milliseconds (YYYY-MM-DDTHH:MM:SS.mmmZ)'",
    "WHEN SAFE.TIMESTAMP(JSON_VALUE(j.emitted_at)) IS NULL THEN 'emitted_at is not a valid time'",
    `WHEN UNIX_MILLIS(SAFE.TIMESTAMP(JSON_VALUE(j.emitted_at))) < ${Date.UTC(2000, 0, 1)} OR UNIX_MILLIS(SAFE.TIMESTAMP(JSON_VALUE(j.emitted_at))) >= ${Date.UTC(2200, 0, 1)} THEN 'emitted_at is outside years 2000..2199'`,
    'END',
  ].join('\n    ');
}

export interface StageOptions {
  dataset: string;
  run: number;
  objects: readonly NewObject[];
}

/**
 * The statements that stage this run's new ledger objects (none when there are none): the
 * `new_objects` table, the lines of exactly the days they fall in, `entries_new`, the invalid lines,
 * and one `objects` row per new object (so it is never read again).
 */
export function stageStatements(o: StageOptions): string[] {
  const t = (name: string): string => tableName('bigquery', name, { dataset: o.dataset });
  const run = intLiteral(o.run);
  const out: string[] = [
    `CREATE OR REPLACE TABLE ${t('new_objects')} (object STRING NOT NULL, uri STRING NOT NULL, dt DATE NOT NULL, obj_node STRING NOT NULL, seg_created_ms BIGINT, gzip BOOL NOT NULL)`,
  ];
  out.push(
    ...insertValues(
      t('new_objects'),
      'object, uri, dt, obj_node, seg_created_ms, gzip',
      o.objects.map((x) => `(${sqlString(x.name)}, ${sqlString(x.uri)}, ${dateLiteral(x.dt)}, ${sqlString(x.node)}, ${intLiteral(x.segCreatedMs)}, ${x.gzip ? 'TRUE' : 'FALSE'})`),
    ),
  );
  // One scan per compression, of only the days with new objects; the join keeps only new objects' lines.
  const scans: string[] = [];
  for (const gzip of [false, true]) {
    const days = partitionDays(o.objects.filter((x) => x.gzip === gzip));
    if (days.length > 0) scans.push(`SELECT _FILE_NAME AS uri, line FROM ${t(gzip ? 'ledger_lines_gz' : 'ledger_lines_plain')} WHERE ${dtFilter(days)}`);
  }
  if (scans.length > 0) {
    out.push(
      [
        `CREATE OR REPLACE TABLE ${t('staged_lines')} AS`,
        'WITH lines AS (',
        `  ${scans.join('\n  UNION ALL\n  ')}`,
        '),',
        'parsed AS (',
        '  SELECT o.object, o.obj_node, o.seg_created_ms, l.line, SAFE.PARSE_JSON(l.line) AS j',
        `  FROM lines AS l JOIN ${t('new_objects')} AS o ON o.uri = l.uri`,
        // A blank line carries nothing (the recorder's reader skips it silently).
        "  WHERE l.line IS NOT NULL AND TRIM(l.line) <> ''",
        ')',
        'SELECT',
        '  p.object, p.obj_node, p.seg_created_ms, p.line, p.j,',
        // No byte offset exists in an external table: a fingerprint of the line stands in (docs/bigquery.md).
        '  FARM_FINGERPRINT(p.line) & 0x7FFFFFFFFFFFFFFF AS line_offset,',
        `  ${problemExpression()} AS problem`,
        'FROM parsed AS p',
      ].join('\n'),
    );
  } else {
    out.push(`CREATE OR REPLACE TABLE ${t('staged_lines')} (object STRING, obj_node STRING, seg_created_ms BIGINT, line STRING, j JSON, line_offset BIGINT, problem STRING)`);
  }
  out.push(
    [
      `CREATE OR REPLACE TABLE ${t('entries_new')} AS`,
      'SELECT',
      `  CAST(${run} AS BIGINT) AS run,`,
      '  s.object,',
      '  s.line_offset,',
      '  s.obj_node,',
      '  s.seg_created_ms,',
      // Copies with another content conflict: the digest is of the entry's fields in a fixed order.
      '  TO_BASE64(MD5(TO_JSON_STRING(STRUCT(SAFE.INT64(s.j.v) AS v, JSON_VALUE(s.j.id) AS id, JSON_VALUE(s.j.node) AS node, JSON_VALUE(s.j.writer) AS writer, SAFE.INT64(s.j.seq) AS seq,',
      '    JSON_VALUE(s.j.kind) AS kind, JSON_VALUE(s.j.vm_id) AS vm_id, JSON_VALUE(s.j.snapshot_id) AS snapshot_id, JSON_VALUE(s.j.source_snapshot_id) AS source_snapshot_id,',
      '    JSON_VALUE(s.j.reason) AS reason, JSON_VALUE(s.j.hypervisor) AS hypervisor, SAFE.INT64(s.j.shape.cpu) AS cpu, SAFE.INT64(s.j.shape.mem_bytes) AS mem_bytes,',
      '    SAFE.INT64(s.j.shape.storage_bytes) AS storage_bytes, JSON_VALUE(s.j.emitted_at) AS emitted_at)))) AS digest,',
      '  JSON_VALUE(s.j.id) AS id,',
      '  JSON_VALUE(s.j.node) AS entry_node,',
      '  JSON_VALUE(s.j.writer) AS writer,',
      '  SAFE.INT64(s.j.seq) AS seq,',
      '  JSON_VALUE(s.j.kind) AS kind,',
      "  CASE WHEN STARTS_WITH(JSON_VALUE(s.j.kind), 'snap.') THEN JSON_VALUE(s.j.snapshot_id) ELSE JSON_VALUE(s.j.vm_id) END AS resource_id,",
      '  JSON_VALUE(s.j.reason) AS reason,',
      '  JSON_VALUE(s.j.hypervisor) AS hypervisor,',
      '  SAFE.INT64(s.j.shape.cpu) AS cpu,',
      '  SAFE.INT64(s.j.shape.mem_bytes) AS mem_bytes,',
      '  SAFE.INT64(s.j.shape.storage_bytes) AS storage_bytes,',
      '  UNIX_MILLIS(SAFE.TIMESTAMP(JSON_VALUE(s.j.emitted_at))) AS t,',
      '  JSON_VALUE(s.j.emitted_at) AS emitted_at',
      `FROM ${t('staged_lines')} AS s`,
      'WHERE s.problem IS NULL',
    ].join('\n'),
  );
  out.push(
    [
      `INSERT INTO ${t('invalid_lines')} (run, object, line_offset, length, reason)`,
      `SELECT ${run}, s.object, s.line_offset, BYTE_LENGTH(s.line) + 1, s.problem`,
      `FROM ${t('staged_lines')} AS s`,
      'WHERE s.problem IS NOT NULL',
    ].join('\n'),
  );
  out.push(
    [
      `INSERT INTO ${t('objects')} (object, cls, run, entries, invalid, quarantined)`,
      `SELECT o.object, 'ledger', ${run}, COUNTIF(s.object IS NOT NULL AND s.problem IS NULL), COUNTIF(s.problem IS NOT NULL), 0`,
      `FROM ${t('new_objects')} AS o`,
      `LEFT JOIN ${t('staged_lines')} AS s ON s.object = o.object`,
      'GROUP BY o.object',
    ].join('\n'),
  );
  return out;
}
