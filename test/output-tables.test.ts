/**
 * The rollup's outputs are loadable as they are (docs/consumer.md, "Outputs"):
 * (a) sink/sql/bigquery/02_output_tables.sql, the BigQuery external tables over them, parses with
 *     sqlglot's bigquery dialect, and the columns it declares are exactly the fields, in order and
 *     with the JSON types, of real output rows written by the CLI (and, for its PARQUET variant,
 *     the columns and types of the Parquet files);
 * (b) DuckDB reads the partitions with hive_partitioning as they lie: every row comes back, with
 *     `dt` the UTC day of the row's hour (hourly) or start (intervals), `run` the run (revisions).
 * The fixture spans two UTC days, has provisional and final rows, nulls and values in every
 * nullable column, and a second run whose late entries emit revisions.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KINDS, REASONS } from 'metering-ledger';
import { HOUR, MIN, T0, TestBucket, TestWriter, at } from './support/consumer-bucket.js';
import { spawnCli, waitExit } from './support/spawn.js';
import { tempDir } from './support/tmp.js';
import { externalTableParts, parseBigQuery, sqlglotAvailable, topLevelCommas } from './support/sqlglot.js';

const DDL_FILE = fileURLToPath(new URL('../sink/sql/bigquery/02_output_tables.sql', import.meta.url));
const sqlglot = sqlglotAvailable;

type Output = 'hourly' | 'intervals' | 'revisions';
const OUTPUTS: readonly Output[] = ['hourly', 'intervals', 'revisions'];
const PARTITION: Record<Output, { column: string; type: string }> = {
  hourly: { column: 'dt', type: 'DATE' },
  intervals: { column: 'dt', type: 'DATE' },
  revisions: { column: 'run', type: 'INT64' },
};

let root: string;
let cleanup: () => void;
let bucket: TestBucket;
const out = { ndjson: '', parquet: '' };
let duck: DuckDBInstance;
let conn: DuckDBConnection;

async function rollup(outDir: string, format: 'ndjson' | 'parquet', now: number): Promise<void> {
  const r = await waitExit(spawnCli(['rollup', '--source', bucket.dir, '--out', outDir, '--format', format, '--grace', '0s', '--now', at(now)], { env: { ...process.env, METERING_LOG_LEVEL: 'warn' } }));
  expect(r.code, r.stderr).toBe(0);
}

beforeAll(async () => {
  ({ dir: root, cleanup } = tempDir('output-tables'));
  bucket = new TestBucket(path.join(root, 'bucket'));
  out.ndjson = path.join(root, 'out-ndjson');
  out.parquet = path.join(root, 'out-parquet');
  const w1 = new TestWriter('n1', 'w1');
  const w2 = new TestWriter('n2', 'w2');
  // Run 1: 2026-11-01 and -02 (UTC). vm-a crosses midnight; vm-b has no hypervisor and stays open;
  // vm-d stays open; a snapshot on day 1.
  await bucket.put([
    w1.entry(KINDS.SNAP_STORAGE_START, 'snap-1', T0 + 1 * HOUR),
    w1.entry(KINDS.SNAP_STORAGE_STOP, 'snap-1', T0 + 5 * HOUR, { reason: REASONS.SNAP_RM }),
    w1.start('vm-a', T0 + 20 * HOUR),
    w1.start('vm-b', T0 + 22 * HOUR, { hypervisor: '' }),
    w1.stop('vm-a', T0 + 28 * HOUR + 15 * MIN),
  ]);
  await bucket.put([w2.start('vm-d', T0 + 38 * HOUR), w2.start('vm-c', T0 + 39 * HOUR + 30 * MIN)]);
  const now1 = T0 + 41 * HOUR;
  await bucket.progress('n1', T0 + 40 * HOUR, now1 - 5 * MIN, { w1: w1.seq });
  await bucket.progress('n2', T0 + 40 * HOUR, now1 - 5 * MIN, { w2: w2.seq });
  await rollup(out.ndjson, 'ndjson', now1);
  await rollup(out.parquet, 'parquet', now1);
  // Run 2: late entries for hours already final: vm-b's stop (withdraws final hours) and a VM
  // that ran on day 1 (rows appear in final hours). Both are revisions of run 2. vm-d stops after
  // the new watermark (T0+44h): its last hour is provisional.
  await bucket.put([w1.stop('vm-b', T0 + 30 * HOUR), w1.start('vm-late', T0 + 2 * HOUR), w1.stop('vm-late', T0 + 3 * HOUR)]);
  await bucket.put([w2.stop('vm-d', T0 + 44 * HOUR + 30 * MIN)]);
  const now2 = T0 + 45 * HOUR;
  await bucket.progress('n1', T0 + 44 * HOUR, now2 - 5 * MIN, { w1: w1.seq });
  await bucket.progress('n2', T0 + 44 * HOUR, now2 - 5 * MIN, { w2: w2.seq });
  await rollup(out.ndjson, 'ndjson', now2);
  await rollup(out.parquet, 'parquet', now2);
  duck = await DuckDBInstance.create(':memory:');
  conn = await duck.connect();
}, 120_000);

afterAll(() => {
  conn?.closeSync();
  duck?.closeSync();
  cleanup?.();
});

// ---------------------------------------------------------------------------------------------
// The DDL file

interface Column {
  name: string;
  type: string;
}
interface ExternalTable {
  sql: string;
  table: string;
  columns: Column[];
  partition: Column[];
  options: Map<string, string>;
}

/** Statements of SQL text: split at `;` ending a line, comment lines dropped. */
function statements(text: string): string[] {
  return text
    .split(/;[ \t]*(?:\r?\n|$)/)
    .map((s) => s.split('\n').filter((l) => !l.trim().startsWith('--')).join('\n').trim())
    .filter((s) => s !== '');
}

function columnsOf(text: string): Column[] {
  return topLevelCommas(text)
    .filter((c) => c !== '')
    .map((c) => {
    const m = /^(`?)([a-z_][a-z0-9_]*)\1\s+([\s\S]+)$/.exec(c);
    if (!m) throw new Error(`not a column: ${c}`);
    return { name: m[2]!, type: m[3]!.replace(/\s+/g, ' ').trim() };
  });
}

function externalTable(sql: string): ExternalTable {
  const t = externalTableParts(sql);
  if (!t || t.partition === null) throw new Error(`not an external table with partition columns: ${sql.slice(0, 200)}`);
  return { sql, table: t.table.replaceAll('`', ''), columns: columnsOf(t.columns), partition: columnsOf(t.partition), options: new Map(t.options) };
}

/**
 * sqlglot 10.6 (Debian) knows no CREATE EXTERNAL TABLE and no OPTIONS clause: such a statement is
 * checked in parts, its table and columns (partition columns included) as a CREATE TABLE and every
 * option's value as a literal, as test/consumer-bigquery.test.ts does. Anything else parses whole.
 */
function parseable(sql: string): string[] {
  if (!sql.startsWith('CREATE OR REPLACE EXTERNAL TABLE')) return [sql];
  const t = externalTable(sql);
  const cols = [...t.columns, ...t.partition].map((c) => `\`${c.name}\` ${c.type}`).join(', ');
  return [`CREATE OR REPLACE TABLE ${t.table} (${cols})`, ...[...t.options].map(([k, v]) => `SELECT ${v} AS ${k}`)];
}

function parse(pieces: string[]): { ok: boolean; error: string | null; sql: string }[] {
  return parseBigQuery(pieces).map((x, i) => ({ ...x, sql: pieces[i]!.slice(0, 200) }));
}

const ddlText = (): string => fs.readFileSync(DDL_FILE, 'utf8');

/** The statements in effect: the NDJSON tables, or the commented PARQUET variant uncommented. */
function ddl(format: 'ndjson' | 'parquet'): string[] {
  const text = ddlText();
  const m = /^-- BEGIN PARQUET\n([\s\S]*?)^-- END PARQUET$/m.exec(text);
  if (!m) throw new Error('02_output_tables.sql has no -- BEGIN PARQUET ... -- END PARQUET block');
  if (format === 'ndjson') return statements(text.replace(m[0], ''));
  return statements(m[1]!.replace(/^-- ?/gm, ''));
}

function tables(format: 'ndjson' | 'parquet'): Map<Output, ExternalTable> {
  const found = new Map<Output, ExternalTable>();
  for (const sql of ddl(format).filter((s) => s.startsWith('CREATE OR REPLACE EXTERNAL TABLE'))) {
    const t = externalTable(sql);
    const name = t.table.split('.').pop() as Output;
    expect(OUTPUTS, t.table).toContain(name);
    found.set(name, t);
  }
  expect([...found.keys()].sort()).toEqual([...OUTPUTS].sort());
  return found;
}

// ---------------------------------------------------------------------------------------------
// The outputs as written

/** The partition files of one output: [partition value, file]. */
function partitionFiles(outDir: string, output: Output, ext: string): { value: string; file: string }[] {
  const dir = path.join(outDir, output);
  const key = PARTITION[output].column;
  return fs
    .readdirSync(dir)
    .sort()
    .map((part) => {
      expect(part, `${output}/${part}`).toMatch(new RegExp(`^${key}=`));
      const files = fs.readdirSync(path.join(dir, part));
      expect(files, `${output}/${part}`).toEqual([`${output}.${ext}`]);
      return { value: part.slice(key.length + 1), file: path.join(dir, part, files[0]!) };
    });
}

function ndjsonRows(output: Output): { partition: string; row: Record<string, unknown> }[] {
  return partitionFiles(out.ndjson, output, 'ndjson').flatMap(({ value, file }) =>
    fs
      .readFileSync(file, 'utf8')
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => ({ partition: value, row: JSON.parse(l) as Record<string, unknown> })),
  );
}

/** Does a JSON value fit a declared BigQuery type (null fits every column: they are all NULLABLE)? */
function fits(value: unknown, type: string): boolean {
  if (value === null) return true;
  if (type === 'STRING') return typeof value === 'string';
  if (type === 'INT64') return typeof value === 'number' && Number.isSafeInteger(value);
  if (type === 'BOOL') return typeof value === 'boolean';
  const struct = /^STRUCT<([\s\S]+)>$/.exec(type);
  if (struct) {
    if (typeof value !== 'object' || Array.isArray(value)) return false;
    const fields = columnsOf(struct[1]!);
    const v = value as Record<string, unknown>;
    return JSON.stringify(Object.keys(v)) === JSON.stringify(fields.map((f) => f.name)) && fields.every((f) => fits(v[f.name], f.type));
  }
  throw new Error(`type ${type} is not one the outputs use`);
}

/** A declared BigQuery type as DuckDB names it for a Parquet column. */
function duckType(type: string): string {
  const scalar: Record<string, string> = { STRING: 'VARCHAR', INT64: 'BIGINT', BOOL: 'BOOLEAN' };
  if (scalar[type]) return scalar[type];
  const struct = /^STRUCT<([\s\S]+)>$/.exec(type);
  if (struct) return `STRUCT(${columnsOf(struct[1]!).map((f) => `${f.name} ${duckType(f.type)}`).join(', ')})`;
  throw new Error(`type ${type} has no DuckDB mapping here`);
}

const sqlPath = (p: string): string => `'${p.replaceAll("'", "''")}'`;

async function query(sql: string): Promise<Record<string, unknown>[]> {
  return (await conn.runAndReadAll(sql)).getRowObjectsJson() as Record<string, unknown>[];
}

// ---------------------------------------------------------------------------------------------

describe('the fixture is not vacuous', () => {
  it('spans two days, with final and provisional rows and revisions of run 2 only', () => {
    const hourly = ndjsonRows('hourly');
    expect(new Set(hourly.map((r) => r.partition))).toEqual(new Set(['2026-11-01', '2026-11-02']));
    expect(new Set(ndjsonRows('intervals').map((r) => r.partition))).toEqual(new Set(['2026-11-01', '2026-11-02']));
    expect(hourly.some((r) => r.row.final === false)).toBe(true);
    expect(hourly.some((r) => r.row.final === true && r.row.version === 2)).toBe(true);
    const revisions = ndjsonRows('revisions');
    expect(new Set(revisions.map((r) => r.partition))).toEqual(new Set(['000002']));
    expect(revisions.some((r) => r.row.revises === 0 && r.row.previous_ms === 0)).toBe(true);
    expect(revisions.some((r) => r.row.ms === 0 && r.row.revises === 1 && r.row.previous_ms === HOUR)).toBe(true);
    // The Parquet outputs have the same partitions.
    for (const output of OUTPUTS) {
      expect(partitionFiles(out.parquet, output, 'parquet').map((p) => p.value)).toEqual(partitionFiles(out.ndjson, output, 'ndjson').map((p) => p.value));
    }
  });
});

describe('sink/sql/bigquery/02_output_tables.sql', () => {
  it.runIf(sqlglot)("every statement, and the PARQUET variant's, parses with sqlglot's bigquery dialect", () => {
    const all = [...ddl('ndjson'), ...ddl('parquet')];
    expect(all.filter((s) => s.startsWith('CREATE OR REPLACE EXTERNAL TABLE'))).toHaveLength(6);
    const failed = parse(all.flatMap(parseable)).filter((r) => !r.ok);
    expect(failed).toEqual([]);
  });

  it.runIf(sqlglot)('the parse check can fail: a broken option value and a broken column type are rejected', () => {
    const hourly = ddl('ndjson').find((s) => s.includes('.hourly ('))!;
    const brokenOption = hourly.replace("uris = ['gs://BUCKET/OUT/hourly/*.ndjson']", "uris = ['gs://BUCKET/OUT/hourly/*.ndjson'");
    const brokenColumn = hourly.replace('ms INT64,', 'ms INT64 INT64 (,');
    expect(brokenOption).not.toBe(hourly);
    expect(brokenColumn).not.toBe(hourly);
    expect(parse(parseable(brokenOption)).some((r) => !r.ok)).toBe(true);
    expect(parse(parseable(brokenColumn)).some((r) => !r.ok)).toBe(true);
  });

  it('reads each output where the rollup writes it: hive partitions, the right format and extension', () => {
    for (const [format, ext, bqFormat] of [['ndjson', 'ndjson', "'NEWLINE_DELIMITED_JSON'"], ['parquet', 'parquet', "'PARQUET'"]] as const) {
      for (const [output, t] of tables(format)) {
        expect(t.partition, `${format} ${output}`).toEqual([{ name: PARTITION[output].column, type: PARTITION[output].type }]);
        expect(t.options.get('format')).toBe(bqFormat);
        expect(t.options.get('uris')).toBe(`['gs://BUCKET/OUT/${output}/*.${ext}']`);
        expect(t.options.get('hive_partition_uri_prefix')).toBe(`'gs://BUCKET/OUT/${output}'`);
      }
    }
    // The two variants declare the same columns.
    const nd = tables('ndjson');
    for (const [output, t] of tables('parquet')) expect(t.columns, output).toEqual(nd.get(output)!.columns);
  });

  it('declares exactly the fields of real NDJSON rows, in order, with their JSON types, and a value in every column', () => {
    for (const [output, t] of tables('ndjson')) {
      const rows = ndjsonRows(output);
      expect(rows.length, output).toBeGreaterThan(0);
      const names = t.columns.map((c) => c.name);
      for (const { row } of rows) {
        expect(Object.keys(row), output).toEqual(names);
        for (const c of t.columns) expect(fits(row[c.name], c.type), `${output}.${c.name} = ${JSON.stringify(row[c.name])} as ${c.type}`).toBe(true);
      }
      // A type only null ever met proves nothing: the fixture gives every column a value.
      for (const c of t.columns) expect(rows.some(({ row }) => row[c.name] !== null), `${output}.${c.name} is never set`).toBe(true);
      // The partition values fit the partition column's type.
      for (const { partition } of rows) {
        if (PARTITION[output].type === 'DATE') expect(new Date(`${partition}T00:00:00Z`).toISOString().slice(0, 10)).toBe(partition);
        else expect(partition).toMatch(/^\d+$/);
      }
    }
  });

  it('declares exactly the columns and types of the Parquet files (the PARQUET variant)', async () => {
    for (const [output, t] of tables('parquet')) {
      const described = await query(`DESCRIBE SELECT * FROM read_parquet(${sqlPath(path.join(out.parquet, output, '*', `${output}.parquet`))}, hive_partitioning = false)`);
      expect(
        described.map((d) => ({ name: d.column_name, type: d.column_type })),
        output,
      ).toEqual(t.columns.map((c) => ({ name: c.name, type: duckType(c.type) })));
    }
  });
});

describe('DuckDB reads the partitions as they lie (hive_partitioning)', () => {
  const HOURLY_COLUMNS = ['hour', 'family', 'resource_id', 'node', 'hypervisor', 'cpu', 'mem_bytes', 'storage_bytes', 'ms', 'final', 'version', 'revises', 'previous_ms'];
  const INTERVAL_COLUMNS = ['family', 'resource_id', 'node', 'hypervisor', 'shape', 'start', 'end', 'open_reason', 'close_reason', 'baseline', 'unconfirmed_end', 'start_event_id', 'end_event_id'];

  /** A row as one comparable string: what the file says, field by field. */
  const key = (row: Record<string, unknown>, columns: string[]): string => JSON.stringify(columns.map((c) => row[c] ?? null));

  /**
   * The rows DuckDB returns, normalized to the files' JSON: times back to ISO strings, integers to
   * numbers. Columns are cast explicitly, since read_json infers types from a sample.
   */
  async function duckRows(output: Output, format: 'ndjson' | 'parquet'): Promise<{ partition: string; row: Record<string, unknown> }[]> {
    const dir = format === 'ndjson' ? out.ndjson : out.parquet;
    const glob = sqlPath(path.join(dir, output, '*', `*.${format}`));
    const from = format === 'ndjson' ? `read_json(${glob}, hive_partitioning = true)` : `read_parquet(${glob}, hive_partitioning = true)`;
    const time = (c: string): string => `epoch_ms(CAST("${c}" AS TIMESTAMP)) AS "${c}"`;
    const int = (c: string): string => `CAST("${c}" AS BIGINT) AS "${c}"`;
    const str = (c: string): string => `CAST("${c}" AS VARCHAR) AS "${c}"`;
    const bool = (c: string): string => `CAST("${c}" AS BOOLEAN) AS "${c}"`;
    const partition = PARTITION[output].column;
    const select =
      output === 'intervals'
        ? [
            ...['family', 'resource_id', 'node', 'hypervisor'].map(str),
            'CAST(shape.cpu AS BIGINT) AS shape_cpu, CAST(shape.mem_bytes AS BIGINT) AS shape_mem, CAST(shape.storage_bytes AS BIGINT) AS shape_storage',
            time('start'),
            time('end'),
            ...['open_reason', 'close_reason'].map(str),
            ...['baseline', 'unconfirmed_end'].map(bool),
            ...['start_event_id', 'end_event_id'].map(str),
          ]
        : [time('hour'), ...['family', 'resource_id', 'node', 'hypervisor'].map(str), ...['cpu', 'mem_bytes', 'storage_bytes', 'ms'].map(int), bool('final'), ...['version', 'revises', 'previous_ms'].map(int)];
    const rows = await query(`SELECT ${select.join(', ')}, CAST(${partition} AS VARCHAR) AS "partition" FROM ${from}`);
    const iso = (v: unknown): string | null => (v === null ? null : new Date(Number(v)).toISOString());
    const n = (v: unknown): number | null => (v === null ? null : Number(v));
    return rows.map((r) => {
      const row: Record<string, unknown> =
        output === 'intervals'
          ? {
              family: r.family,
              resource_id: r.resource_id,
              node: r.node,
              hypervisor: r.hypervisor,
              shape: { cpu: n(r.shape_cpu), mem_bytes: n(r.shape_mem), storage_bytes: n(r.shape_storage) },
              start: iso(r.start),
              end: iso(r.end),
              open_reason: r.open_reason,
              close_reason: r.close_reason,
              baseline: r.baseline,
              unconfirmed_end: r.unconfirmed_end,
              start_event_id: r.start_event_id,
              end_event_id: r.end_event_id,
            }
          : {
              hour: iso(r.hour),
              family: r.family,
              resource_id: r.resource_id,
              node: r.node,
              hypervisor: r.hypervisor,
              cpu: n(r.cpu),
              mem_bytes: n(r.mem_bytes),
              storage_bytes: n(r.storage_bytes),
              ms: n(r.ms),
              final: r.final,
              version: n(r.version),
              revises: n(r.revises),
              previous_ms: n(r.previous_ms),
            };
      return { partition: String(r.partition), row };
    });
  }

  for (const format of ['ndjson', 'parquet'] as const) {
    it(`${format}: every hourly row, with dt the UTC day of its hour`, async () => {
      const rows = await duckRows('hourly', format);
      expect(rows.map((r) => key(r.row, HOURLY_COLUMNS)).sort()).toEqual(ndjsonRows('hourly').map((r) => key(r.row, HOURLY_COLUMNS)).sort());
      for (const { partition, row } of rows) expect(partition, String(row.hour)).toBe(String(row.hour).slice(0, 10));
    });

    it(`${format}: every interval, with dt the UTC day it starts (an interval across midnight stays in its start day)`, async () => {
      const rows = await duckRows('intervals', format);
      expect(rows.map((r) => key(r.row, INTERVAL_COLUMNS)).sort()).toEqual(ndjsonRows('intervals').map((r) => key(r.row, INTERVAL_COLUMNS)).sort());
      for (const { partition, row } of rows) expect(partition, String(row.start)).toBe(String(row.start).slice(0, 10));
      const vmA = rows.find((r) => r.row.resource_id === 'vm-a' && r.row.family === 'vm.compute')!;
      expect([vmA.partition, String(vmA.row.end).slice(0, 10)]).toEqual(['2026-11-01', '2026-11-02']);
    });

    it(`${format}: every revision, with run the run that emitted it`, async () => {
      const rows = await duckRows('revisions', format);
      expect(rows.map((r) => key(r.row, HOURLY_COLUMNS)).sort()).toEqual(ndjsonRows('revisions').map((r) => key(r.row, HOURLY_COLUMNS)).sort());
      // DuckDB keeps the zero-padded text of run=000002 (VARCHAR); as a number it is the run.
      expect(new Set(rows.map((r) => Number(r.partition)))).toEqual(new Set([2]));
    });
  }
});
