/**
 * The rollup's outputs as hive-style partitions by UTC day, loadable as they are by BigQuery and
 * DuckDB (docs/consumer.md, "Outputs"):
 *
 *   <out>/hourly/dt=YYYY-MM-DD/hourly.<ext>          rows of the hours of that day
 *   <out>/intervals/dt=YYYY-MM-DD/intervals.<ext>    intervals by start day
 *   <out>/revisions/run=NNNNNN/revisions.<ext>       the revisions one run emitted (append-only)
 *   <out>/report.json
 *
 * <ext> is `ndjson` (default) or `parquet`. A run rewrites only the partitions whose rows changed
 * (each atomically: temp file, fsync, rename) and leaves every other file as it is, so a re-run with
 * nothing new leaves every byte in place. The files are written by DuckDB's COPY from the state
 * database: rows never pass through the JS heap.
 */
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import type { DuckDBConnection } from '@duckdb/node-api';
import { produceFileAtomic } from '../../atomic-file.js';

export type OutputFormat = 'ndjson' | 'parquet';
/** The outputs partitioned by UTC day. */
export type DailyOutput = 'hourly' | 'intervals';
export const OUTPUT_FORMATS: readonly OutputFormat[] = ['ndjson', 'parquet'];
export const DAY_MS = 86_400_000;

const isoSql = (ms: string): string => `strftime(make_timestamp(${ms} * 1000), '%Y-%m-%dT%H:%M:%S.%gZ')`;
const isoOrNullSql = (ms: string): string => `CASE WHEN ${ms} IS NULL THEN NULL ELSE ${isoSql(ms)} END`;

/** The hourly row as written (the HourlyRow shape, in its field order). */
const HOURLY_SELECT = `${isoSql('hour_ms')} AS hour, family, resource_id, node, hypervisor, cpu, mem_bytes, storage_bytes, ms, final, version, revises, previous_ms`;
export const HOURLY_ORDER = 'hour_ms, family, resource_id, node, hypervisor NULLS FIRST, cpu, mem_bytes, storage_bytes';

/** The interval as written (the UsageInterval shape, in its field order). */
const INTERVAL_SELECT = `family, resource_id, node, hypervisor, struct_pack(cpu := cpu, mem_bytes := mem_bytes, storage_bytes := storage_bytes) AS shape,
  ${isoSql('start_ms')} AS start, ${isoOrNullSql('end_ms')} AS "end", open_reason, close_reason, baseline, unconfirmed_end, start_event_id, end_event_id`;
export const INTERVAL_ORDER = 'family, resource_id, start_ms, start_event_id';

const REVISION_SELECT = `${isoSql('hour_ms')} AS hour, family, resource_id, node, hypervisor, cpu, mem_bytes, storage_bytes, ms, TRUE AS final, version, revises, previous_ms`;

export const dayName = (dayMs: number): string => new Date(dayMs).toISOString().slice(0, 10);
const copyOptions = (format: OutputFormat): string => (format === 'ndjson' ? "(FORMAT json)" : "(FORMAT parquet, COMPRESSION zstd)");
const quote = (s: string): string => `'${s.replaceAll("'", "''")}'`;

export interface PartitionWrite {
  connection: DuckDBConnection;
  out: string;
  format: OutputFormat;
  /** The tables the rows come from (DuckDB names). */
  tables: { hourly: string; intervals: string; revisions: string };
}

async function rowsIn(connection: DuckDBConnection, sql: string): Promise<number> {
  const r = await connection.runAndReadAll(sql);
  return Number(r.getRows()[0]![0]);
}

async function writePartition(w: PartitionWrite, file: string, select: string, countSql: string): Promise<'written' | 'removed' | 'none'> {
  if ((await rowsIn(w.connection, countSql)) === 0) {
    const existed = await fsp.rm(file, { force: false }).then(
      () => true,
      () => false,
    );
    await fsp.rmdir(path.dirname(file)).catch(() => {});
    return existed ? 'removed' : 'none';
  }
  await produceFileAtomic(file, async (tmp) => {
    await w.connection.run(`COPY (${select}) TO ${quote(tmp)} ${copyOptions(w.format)}`);
  });
  return 'written';
}

/** Rewrites the given days of one daily output (hourly or intervals). Returns how many files changed. */
export async function writeDays(w: PartitionWrite, output: DailyOutput, days: readonly number[]): Promise<number> {
  let changed = 0;
  for (const day of days) {
    const file = path.join(w.out, output, `dt=${dayName(day)}`, `${output}.${w.format}`);
    const where = output === 'hourly' ? `hour_ms >= ${day} AND hour_ms < ${day + DAY_MS}` : `start_ms >= ${day} AND start_ms < ${day + DAY_MS}`;
    const table = w.tables[output];
    const select = output === 'hourly' ? `SELECT ${HOURLY_SELECT} FROM ${table} WHERE ${where} ORDER BY ${HOURLY_ORDER}` : `SELECT ${INTERVAL_SELECT} FROM ${table} WHERE ${where} ORDER BY ${INTERVAL_ORDER}`;
    if ((await writePartition(w, file, select, `SELECT COUNT(*) FROM ${table} WHERE ${where}`)) !== 'none') changed++;
  }
  return changed;
}

/** Writes the revisions of one run (a new file; an existing one is the same run redone after a crash). */
export async function writeRevisions(w: PartitionWrite, run: number): Promise<number> {
  const file = path.join(w.out, 'revisions', `run=${String(run).padStart(6, '0')}`, `revisions.${w.format}`);
  const from = `FROM ${w.tables.revisions} WHERE run = ${run}`;
  return (await writePartition(w, file, `SELECT ${REVISION_SELECT} ${from} ORDER BY ord`, `SELECT COUNT(*) ${from}`)) === 'none' ? 0 : 1;
}

/** Every day that has rows in an output (a full rewrite: first run on an empty --out, a format change). */
export async function allDays(connection: DuckDBConnection, table: string, column: string): Promise<number[]> {
  const r = await connection.runAndReadAll(`SELECT DISTINCT (${column} // ${DAY_MS}) * ${DAY_MS} AS d FROM ${table} ORDER BY d`);
  return r.getRows().map((row) => Number(row[0]));
}

/** Every run that emitted revisions. */
export async function allRevisionRuns(connection: DuckDBConnection, table: string): Promise<number[]> {
  const r = await connection.runAndReadAll(`SELECT DISTINCT run FROM ${table} ORDER BY run`);
  return r.getRows().map((row) => Number(row[0]));
}

/** The days of an output's partitions on disk (`dt=YYYY-MM-DD` directories). */
export async function partitionDays(out: string, output: DailyOutput): Promise<number[]> {
  const names = await fsp.readdir(path.join(out, output)).catch(() => [] as string[]);
  return names.flatMap((n) => {
    const m = /^dt=(\d{4})-(\d{2})-(\d{2})$/.exec(n);
    return m ? [Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]))] : [];
  });
}

/** The partition directories under `out` (hourly/dt=…, intervals/dt=…, revisions/run=…): where a killed run can leave temp files. */
export async function partitionDirs(out: string): Promise<string[]> {
  const dirs: string[] = [];
  for (const output of ['hourly', 'intervals', 'revisions']) {
    const root = path.join(out, output);
    for (const part of await fsp.readdir(root).catch(() => [] as string[])) dirs.push(path.join(root, part));
  }
  return dirs;
}

/** Removes the partitions of another format (after --format changed and everything was rewritten). */
export async function removeOtherFormat(out: string, format: OutputFormat): Promise<void> {
  const other = format === 'ndjson' ? 'parquet' : 'ndjson';
  for (const output of ['hourly', 'intervals', 'revisions']) {
    const dir = path.join(out, output);
    const parts = await fsp.readdir(dir).catch(() => [] as string[]);
    for (const part of parts) await fsp.rm(path.join(dir, part, `${output}.${other}`), { force: true });
  }
}
