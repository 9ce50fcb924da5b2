/**
 * `metering rollup --engine bigquery`: the billing rules (sink/sql/rules, rendered for BigQuery by
 * sink/sql/render.ts, the same source as DuckDB's) run inside BigQuery over external tables on the
 * bucket. State and outputs are tables of the dataset; only report.json comes back.
 *
 * A run: check credentials and the dataset; create or refresh the external tables for this source;
 * create the state tables; list the bucket (the project's GCS destination) and take the objects the
 * dataset has not read; stage their lines, reading only the `dt` partitions they fall in (a literal
 * filter, so BigQuery prunes); load this run's node progress; run every rule statement in order,
 * one job each; read the report back. Every job has a timeout.
 *
 * Jobs are not one transaction (BigQuery keeps DDL out of transactions). A run that dies part way
 * is redone by the next one: the run number is the last run that wrote its watermark plus one, and
 * everything a later run number wrote is deleted first.
 */
import * as path from 'node:path';
import { pino } from 'pino';
import { segmentCreatedAt, type Logger } from '../../../src/index.js';
import { writeFileAtomic } from '../../atomic-file.js';
import { openDestination } from '../../destinations/open.js';
import { bigQueryFoldFunction } from '../../sql/fold-udf.js';
import { renderExternalTables, sourceUri } from '../../sql/bigquery/external-tables.js';
import { dtFilter, insertValues, partitionDays, sqlString, stageStatements, type NewObject } from '../../sql/bigquery/stage.js';
import { renderMigration, renderRules, tableName, type RuleParams } from '../../sql/render.js';
import type { RollupReport } from '../report.js';
import { rollupSettings, type RollupOptions, type RunSummary } from '../rollup-options.js';
import { countQuarantineLines, listSource, readProgressObjects } from '../source-reader.js';
import { BigQuerySetupError, connectBigQuery, type BigQueryClientOptions, type BigQueryRunner } from './bigquery-client.js';
import { readBigQueryReport } from './bigquery-report.js';

/** Whether the dataset's `entries` still has a column that only schema v2 had (counted: 0 or 1). */
export function v2StateCheck(dataset: string): string {
  tableName('bigquery', 'entries', { dataset }); // checks the dataset's name
  return `SELECT COUNT(*) AS n FROM \`${dataset}.INFORMATION_SCHEMA.COLUMNS\` WHERE table_name = 'entries' AND column_name = 'obj_node'`;
}

export { BigQuerySetupError, BigQueryTimeoutError, type BigQueryClientOptions } from './bigquery-client.js';

/** Default per-job timeout: a rules statement over a fleet's history is minutes, not hours. */
export const DEFAULT_BQ_JOB_TIMEOUT_MS = 30 * 60_000;

export interface BigQueryRollupOptions extends Omit<RollupOptions, 'state' | 'destination'> {
  /** `gs://bucket/prefix`: BigQuery reads the objects where they lie. */
  source: string;
  /** An already opened source (tests); its bucket is still taken from `source`. */
  destination?: RollupOptions['destination'];
  /** GCS API endpoint for listing the bucket (a test server). */
  gcsEndpoint?: string;
  /** `PROJECT.DATASET`; it must exist. */
  dataset: string;
  /** BigQuery location of the jobs (default: the dataset's). */
  location?: string;
  /** Per job, server and client side (default 30 minutes). */
  jobTimeoutMs?: number;
  client?: BigQueryClientOptions;
  /** Called with every statement sent, before it is sent (tracing, tests). */
  onStatement?: (sql: string, label: string) => void;
}

export interface BigQueryRollupResult {
  report: RollupReport;
  run: RunSummary & { run: number; partitions_read: string[]; bytes_processed: number };
  /** The dataset's tables holding the outputs. */
  tables: { hourly: string; intervals: string; revisions: string };
}

/** gs://bucket/prefix split; anything else is not a source BigQuery can read. */
export function parseGsSource(source: string): { bucket: string; prefix: string } {
  const m = /^gs:\/\/([^/]+)\/?(.*)$/.exec(source);
  if (!m) throw new BigQuerySetupError(`--source ${source} is not a gs:// URL: BigQuery reads the bucket the shippers upload to`, 'pass --source gs://BUCKET/PREFIX (the shippers\' --dest), or use --engine duckdb for a local directory');
  try {
    sourceUri(m[1]!, m[2]!);
  } catch (err) {
    throw new BigQuerySetupError(`--source ${source}: ${(err as Error).message}`, 'pass the shippers\' --dest, gs://BUCKET/PREFIX');
  }
  return { bucket: m[1]!, prefix: m[2]!.replace(/\/+$/, '') };
}

const FOLD_CALL = /\bmetering_fold\s*\(/;

export async function runBigQueryRollup(options: BigQueryRollupOptions): Promise<BigQueryRollupResult> {
  const log: Logger = options.logger ?? pino({ level: 'silent' });
  const progress = options.onProgress ?? ((): void => {});
  const { now, graceMs, staleAfterMs, retainMs, maxSkewMs } = rollupSettings(options);
  const { bucket, prefix } = parseGsSource(options.source);
  const dataset = options.dataset;
  const jobTimeoutMs = options.jobTimeoutMs ?? DEFAULT_BQ_JOB_TIMEOUT_MS;
  if (!Number.isSafeInteger(jobTimeoutMs) || jobTimeoutMs < 1) throw new BigQuerySetupError(`--bq-timeout must be a positive duration, got ${jobTimeoutMs} ms`, 'e.g. --bq-timeout 30m');
  const t = (name: string): string => tableName('bigquery', name, { dataset });

  const bq: BigQueryRunner = await connectBigQuery({ dataset, ...(options.location ? { location: options.location } : {}), ...(options.client ? { client: options.client } : {}), jobTimeoutMs, log });
  let bytesProcessed = 0;
  const send = async (sql: string, label: string): Promise<Record<string, unknown>[]> => {
    options.onStatement?.(sql, label);
    const started = performance.now();
    const r = await bq.query(sql, label);
    bytesProcessed += r.bytesProcessed ?? 0;
    log.debug({ label, job: r.job, ms: Math.round(performance.now() - started), bytes_processed: r.bytesProcessed }, 'metering rollup (bigquery): job');
    return r.rows;
  };

  // The bucket as BigQuery sees it, and the state tables (both idempotent).
  for (const sql of renderExternalTables({ bucket, prefix, dataset })) await send(sql, '01_external_tables.sql');
  const base: RuleParams = { now_ms: now, grace_ms: graceMs, stale_after_ms: staleAfterMs, retain_ms: retainMs, max_skew_ms: maxSkewMs, run: 1 };
  for (const s of renderRules('bigquery', base, { dataset }).filter((x) => x.file.startsWith('00_'))) await send(s.sql, s.file);
  // A state of schema v2 (its `entries` kept every column of every copy) is migrated once: one
  // metadata query per run instead of the migration's 15 DDL jobs on every run.
  const [v2] = await send(v2StateCheck(dataset), 'state schema check');
  if (Number(v2?.n ?? 0) > 0) for (const sql of renderMigration('bigquery', 3, { dataset })) await send(sql, 'state migration to schema v3');

  // A run that did not write its watermark did not happen: redo it under the same number.
  const [last] = await send(`SELECT COALESCE(MAX(run), 0) AS run FROM ${t('runs')} WHERE watermark_ms IS NOT NULL`, 'the last finished run');
  const run = Number(last?.run ?? 0) + 1;
  for (const table of ['entries', 'objects', 'invalid_lines', 'revisions']) await send(`DELETE FROM ${t(table)} WHERE run >= ${run}`, `undo of unfinished run ${run}`);

  progress({ phase: 'list', objectsDone: 0, objectsTotal: 0, entries: 0 });
  const { destination, prefix: listPrefix } = options.destination ?? (await openDestination(options.source, options.gcsEndpoint ? { endpoint: options.gcsEndpoint } : {}));
  const listing = await listSource(destination, listPrefix);
  const read = new Set((await send(`SELECT object FROM ${t('objects')}`, 'the objects already read')).map((r) => String(r.object)));
  const root = `gs://${bucket}/`;
  const newLedger: NewObject[] = listing.ledger
    .filter((o) => !read.has(o.name))
    .map((o) => ({ name: o.name, uri: root + o.name, dt: o.parsed.dt, node: o.parsed.node, segCreatedMs: segmentCreatedAt(o.parsed.segment), gzip: o.parsed.gzip }));
  const newQuarantine = listing.quarantine.filter((o) => !read.has(o.name));
  read.clear();
  const partitions = partitionDays(newLedger);
  log.info({ run, new_objects: newLedger.length, partitions: partitions.length ? dtFilter(partitions) : 'none' }, 'metering rollup (bigquery): staging');
  progress({ phase: 'read', objectsDone: 0, objectsTotal: newLedger.length + newQuarantine.length, entries: 0 });

  for (const sql of stageStatements({ dataset, run, objects: newLedger })) await send(sql, 'staging of new objects');
  const bad: RollupReport['objects']['bad'] = [];
  const quarantineRows: string[] = [];
  for (const q of newQuarantine) {
    const lines = await countQuarantineLines(destination, q.name);
    if (typeof lines === 'number') quarantineRows.push(`(${sqlString(q.name)}, 'quarantine', ${run}, 0, 0, ${lines})`);
    else bad.push({ object: q.name, error: lines.error });
  }
  for (const sql of insertValues(t('objects'), 'object, cls, run, entries, invalid, quarantined', quarantineRows)) await send(sql, 'quarantine objects');

  // One fold bucket: BigQuery scales the fold out itself (one UDF call per resource), so the
  // bucket file runs once, for bucket 0, with a bucket as large as the run.
  const rules = renderRules('bigquery', { ...base, run, bucket: 0, bucket_events: Number.MAX_SAFE_INTEGER }, { dataset });

  // This run's reads of the progress objects (one row per node), through the one reader of them.
  progress({ phase: 'compute', objectsDone: newLedger.length + newQuarantine.length, objectsTotal: newLedger.length + newQuarantine.length, entries: 0 });
  await send(`DELETE FROM ${t('node_reads')} WHERE TRUE`, 'node progress');
  await send(`DELETE FROM ${t('writer_progress')} WHERE TRUE`, 'node progress');
  const nodeRows: string[] = [];
  const writerRows: string[] = [];
  const int = (n: number | null | undefined): string => (typeof n === 'number' && Number.isSafeInteger(n) ? String(n) : 'NULL');
  for (const r of await readProgressObjects(destination, listing.nodes)) {
    if (r.readError !== undefined) bad.push({ object: r.name, error: r.readError });
    const p = r.progress;
    nodeRows.push(
      `(${sqlString(r.node)}, ${int(r.updated)}, ${r.usable ? 'TRUE' : 'FALSE'}, ${r.error === null ? 'NULL' : sqlString(r.error)}, ${int(p ? Date.parse(p.reported_at) : null)}, ${int(p ? Date.parse(p.complete_through) : null)}, ${int(p?.backlog_bytes)})`,
    );
    for (const [writer, w] of r.usable && p ? Object.entries(p.writers ?? {}) : []) if (Number.isSafeInteger(w?.last_seq)) writerRows.push(`(${sqlString(r.node)}, ${sqlString(writer)}, ${w.last_seq})`);
  }
  for (const sql of insertValues(t('node_reads'), 'node, listed_updated_ms, read_ok, read_error, reported_ms, complete_ms, backlog_bytes', nodeRows)) await send(sql, 'node progress');
  for (const sql of insertValues(t('writer_progress'), 'node, writer, last_seq', writerRows)) await send(sql, 'node progress');

  // The rules, in order, one job each; a statement calling the fold gets it as a temp function.
  const fold = bigQueryFoldFunction();
  for (const s of rules) {
    if (s.file.startsWith('00_')) continue;
    await send(FOLD_CALL.test(s.sql) ? `${fold}\n${s.sql}` : s.sql, s.file);
  }

  progress({ phase: 'write', objectsDone: newLedger.length + newQuarantine.length, objectsTotal: newLedger.length + newQuarantine.length, entries: 0 });
  const { report, entriesNew, newRevisions } = await readBigQueryReport((sql, label) => send(sql, label), {
    dataset,
    source: options.source,
    run,
    now,
    graceMs,
    staleAfterMs,
    retainMs,
    maxSkewMs,
    bad,
    unknown: listing.unknown,
  });
  if (options.out) await writeFileAtomic(path.join(options.out, 'report.json'), JSON.stringify(report, null, 2) + '\n');
  const summary = { run, objects_read: newLedger.length + newQuarantine.length, entries_read: entriesNew, new_revisions: newRevisions, watermark: report.watermark, partitions_read: partitions, bytes_processed: bytesProcessed };
  log.info(summary, 'metering rollup (bigquery): done');
  return { report, run: summary, tables: { hourly: t('hourly'), intervals: t('intervals'), revisions: t('revisions') } };
}
