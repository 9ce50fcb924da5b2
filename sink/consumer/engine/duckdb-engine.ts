/**
 * The consumer's engine: the billing rules (sink/sql/rules, rendered for DuckDB by sink/sql/render.ts,
 * the same source as the BigQuery script) on embedded DuckDB, incremental, memory bounded.
 *
 * Everything a run needs from earlier runs lives in one DuckDB database file (default
 * `<out>/state.duckdb`): every entry copy, kept rows with their verdicts, seq ranges, each
 * resource's fold state, intervals, published hourly rows with versions, revisions. A run
 *   1. loads the objects it has not read (the recorder's parser decides what a valid line is; the
 *      appender carries rows in), then
 *   2. runs the rules, which change only what the new entries can change (the ids they touch, the
 *      resources whose timeline moves, the hours from each one's first change on, and open
 *      intervals, which the watermark moves), folding resources in buckets of bounded size,
 *   3. rewrites only the output partitions whose rows changed (outputs/partitions.ts), then
 *   4. commits. One transaction: a crash anywhere leaves the database as the previous run left it,
 *      and the next run redoes the same work and writes the same bytes.
 * DuckDB's memory_limit (default 1 GiB) and a private temp directory beside the state let large
 * runs spill to disk instead of failing.
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { pino } from 'pino';
import type { DuckDBConnection } from '@duckdb/node-api';
import type { Logger } from '../../../src/index.js';
import { PRIVATE_DIR_MODE, PRIVATE_FILE_MODE, removeStaleTempFiles, writeFileAtomic } from '../../atomic-file.js';
import type { Destination } from '../../destinations/destination.js';
import { openDestination } from '../../destinations/open.js';
import { DEFAULT_BUCKET_EVENTS, isBucketFile, renderFile, renderMigration, renderRules, type RuleParams } from '../../sql/render.js';
import type { RollupReport } from '../report.js';
import { rollupSettings, type RollupOptions, type RollupProgress, type RunSummary } from '../rollup-options.js';
import { assertSourceExists, listSource, readProgressObjects, type ListedObject, type SourceListing } from '../source-reader.js';
import { DEFAULT_CHUNK_BYTES, planChunks } from '../backlog-chunks.js';
import { acquireStateLock } from '../state-lock.js';
import { StateFileError } from '../state-error.js';
import { allDays, allRevisionRuns, partitionDays, partitionDirs, removeOtherFormat, writeDays, writeRevisions, type DailyOutput, type OutputFormat, type PartitionWrite } from '../outputs/partitions.js';
import { registerMeteringFold } from './duckdb-fold.js';
import { loadDuckDb } from './duckdb-module.js';
import { num, readHourly, readReport, readRows, rows, str, type RolledRows } from './duckdb-report.js';
import type { HourlyRow } from '../types.js';
import { importLegacyState, isLegacyState } from './legacy-state.js';
import { loadNewObjects, type LoadOptions, type LoadResult } from './load-objects.js';

const STATE_SCHEMA_VERSION = 4;
/**
 * Versions this consumer migrates in place, in the run's transaction: v2 kept every column of every
 * copy in `entries` (sink/sql/migrations/v3.sql drops them); v3 left deleted rows in every vector of
 * the history tables (v4.sql rebuilds them).
 */
const MIGRATED_SCHEMA_VERSIONS = new Set([2, 3]);
/**
 * The tables a migration rebuilds: each is renamed to `<name>_v<version - 1>` and created anew with
 * its own definition, the migration's statements fill it from the old one, which is then dropped.
 */
const REBUILT_TABLES: Readonly<Record<number, readonly string[]>> = { 4: ['metering_fold_intervals', 'metering_intervals', 'metering_hourly'] };

const quote = (s: string): string => `'${s.replaceAll("'", "''")}'`;

/** Migrates a state to schema `version` from the one before (sink/sql/migrations), in the open transaction. */
async function migrate(conn: DuckDBConnection, version: number): Promise<void> {
  const rebuilt = REBUILT_TABLES[version] ?? [];
  for (const table of rebuilt) {
    const [def] = await rows(conn, `SELECT sql FROM duckdb_tables() WHERE schema_name = 'main' AND table_name = ${quote(table)}`);
    if (!def) throw new Error(`state migration to schema v${version}: no table ${table}`);
    await conn.run(`ALTER TABLE ${table} RENAME TO ${table}_v${version - 1}`);
    await conn.run(String(def.sql));
  }
  for (const sql of renderMigration('duckdb', version)) await conn.run(sql);
  for (const table of rebuilt) await conn.run(`DROP TABLE ${table}_v${version - 1}`);
}

export const DEFAULT_MEMORY_LIMIT = '1GiB';

/**
 * This @duckdb/node-api build allocates through glibc malloc (no jemalloc), which keeps memory
 * DuckDB has freed: the process's RSS ran ~0.9 GiB above the 1 GiB memory_limit on a 10 M entry
 * run. Handing freed memory back sooner (flush and trim after 8 MiB instead of 128 MiB, before a
 * large allocation after 32 MiB of bulk frees instead of 512 MiB, and on a background thread) took
 * a 3 M entry run from 1,911 to 1,495 MiB at the same speed (docs/benchmarks.md).
 */
export const ALLOCATOR_SETTINGS: Readonly<Record<string, string>> = {
  allocator_flush_threshold: '8MiB',
  allocator_bulk_deallocation_flush_threshold: '32MiB',
  allocator_background_threads: 'true',
};

/** How a run gets new objects' lines into `metering_entries_new` (the default parses them with the recorder's parser). */
export type EntryLoader = (connection: DuckDBConnection, destination: Destination, o: LoadOptions) => Promise<LoadResult>;

export interface EngineOptions extends RollupOptions {
  /** DuckDB `memory_limit` (e.g. `1GiB`, `4GB`). Default 1 GiB; beyond it DuckDB spills to its temp directory. */
  memoryLimit?: string;
  /** DuckDB worker threads (default: DuckDB's, one per core). */
  threads?: number;
  /** Output file format. Default ndjson. */
  format?: OutputFormat;
  /** Return every interval and hourly row and this run's revisions (tests, small histories). */
  collectRows?: boolean;
  /** Return the hourly rows whose hour starts in [from, to) (epoch ms; null: unbounded), read from the database (`metering usage`). */
  selectHourly?: { from: number | null; to: number | null };
  /**
   * About how many bytes of new ledger objects one run reads (default 256 MiB; 0: no limit). A bigger
   * backlog is read by several runs in this call, each committed; all but the last hold the watermark.
   */
  chunkBytes?: number;
  /** About how many events one fold step takes (memory of a step). Default 200 000. */
  bucketEvents?: number;
  /** Replaces the loader (benchmarks: DuckDB's own JSON reader in place of the recorder's parser). */
  loader?: EntryLoader;
  /**
   * Called for every statement of the rules instead of running it: call `execute()` to run it.
   * For timing, tracing and tests that check a statement against another rendering.
   */
  onStatement?: (sql: string, execute: () => Promise<void>, session: SqlSession) => Promise<void>;
}

/** The engine's connection, as much of it as a statement hook needs (no DuckDB types leak out). */
export interface SqlSession {
  run(sql: string): Promise<void>;
  rows(sql: string): Promise<Record<string, unknown>[]>;
}

export interface RollupOutcome {
  report: RollupReport;
  run: RunSummary;
  /** With `collectRows`. */
  rows?: RolledRows;
  /** With `selectHourly`, in output order. */
  hourly?: HourlyRow[];
}

interface Meta {
  format: OutputFormat | null;
  /** The schema version this run migrates the state from (its transaction runs sink/sql/migrations), or null. */
  migrateFrom: number | null;
}

/** The source a state belongs to (a state pointed at another bucket would skip its objects), and the format its outputs were written in. */
async function checkMeta(connection: DuckDBConnection, file: string, source: string): Promise<Meta> {
  await connection.run('CREATE TABLE IF NOT EXISTS metering_meta (schema_version BIGINT NOT NULL, source VARCHAR NOT NULL, output_format VARCHAR)');
  const meta = await rows(connection, 'SELECT * FROM metering_meta');
  if (meta.length === 0) {
    await connection.run(`INSERT INTO metering_meta VALUES (${STATE_SCHEMA_VERSION}, ${quote(source)}, NULL)`);
    return { format: null, migrateFrom: null };
  }
  const m = meta[0]!;
  const version = num(m.schema_version!);
  const migrateFrom = MIGRATED_SCHEMA_VERSIONS.has(version) ? version : null;
  if (migrateFrom !== null) {
    await connection.run(`UPDATE metering_meta SET schema_version = ${STATE_SCHEMA_VERSION}`);
  } else if (version !== STATE_SCHEMA_VERSION) {
    throw new StateFileError(
      `state database ${file} has schema version ${version}; this consumer understands version ${STATE_SCHEMA_VERSION}${version > STATE_SCHEMA_VERSION ? ' (a state written by a newer consumer: upgrade metering-ledger)' : ' (a state written by an older consumer: move it aside and run again, everything is re-read)'}`,
    );
  }
  if (m.source !== source) throw new StateFileError(`state database ${file} belongs to source ${String(m.source)}, not ${source}; use a separate --state (or --out) per source`);
  return { format: (m.output_format ?? null) as OutputFormat | null, migrateFrom };
}

async function appendNodeReads(conn: DuckDBConnection, destination: Destination, nodes: Parameters<typeof readProgressObjects>[1], bad: LoadResult['bad']): Promise<void> {
  await conn.run('DELETE FROM metering_node_reads');
  await conn.run('DELETE FROM metering_writer_progress');
  const nodeReads = await conn.createAppender('metering_node_reads');
  const writerProgress = await conn.createAppender('metering_writer_progress');
  try {
    for (const r of await readProgressObjects(destination, nodes)) {
      if (r.readError !== undefined) bad.push({ object: r.name, error: r.readError });
      nodeReads.appendVarchar(r.node);
      if (r.updated === undefined) nodeReads.appendNull();
      else nodeReads.appendBigInt(BigInt(r.updated));
      nodeReads.appendBoolean(r.usable);
      if (r.error === null) nodeReads.appendNull();
      else nodeReads.appendVarchar(r.error);
      const p = r.progress;
      if (p) {
        nodeReads.appendBigInt(BigInt(Date.parse(p.reported_at)));
        nodeReads.appendBigInt(BigInt(Date.parse(p.complete_through)));
        const backlog = p.backlog_bytes;
        if (typeof backlog === 'number' && Number.isSafeInteger(backlog)) nodeReads.appendBigInt(BigInt(backlog));
        else nodeReads.appendNull();
        // Only a usable read says what was shipped (as the reference model's lastSeq).
        for (const [writer, w] of r.usable ? Object.entries(p.writers ?? {}) : []) {
          if (!Number.isSafeInteger(w?.last_seq)) continue;
          writerProgress.appendVarchar(r.node);
          writerProgress.appendVarchar(writer);
          writerProgress.appendBigInt(BigInt(w.last_seq));
          writerProgress.endRow();
        }
      } else {
        nodeReads.appendNull();
        nodeReads.appendNull();
        nodeReads.appendNull();
      }
      nodeReads.endRow();
    }
    nodeReads.flushSync();
    writerProgress.flushSync();
  } finally {
    nodeReads.closeSync();
    writerProgress.closeSync();
  }
}

/** The rules after loading, in order; a `*.bucket.sql` file once per fold bucket. */
async function runRules(conn: DuckDBConnection, params: RuleParams, log: Logger, onStatement: EngineOptions['onStatement']): Promise<void> {
  const session: SqlSession = {
    run: async (sql) => {
      await conn.run(sql);
    },
    rows: (sql) => rows(conn, sql),
  };
  const execute = async (file: string, sql: string): Promise<void> => {
    const run = async (): Promise<void> => {
      const started = performance.now();
      try {
        await conn.run(sql);
      } catch (err) {
        throw new Error(`SQL rules ${file} failed: ${(err as Error).message}`, { cause: err });
      }
      log.debug({ file, ms: Math.round(performance.now() - started), statement: sql.slice(0, 80) }, 'metering rollup: statement');
    };
    if (onStatement) await onStatement(sql, run, session);
    else await run();
  };
  const files = [...new Set(renderRules('duckdb', params).map((s) => s.file))].filter((f) => !f.startsWith('00_'));
  for (const file of files) {
    if (!isBucketFile(file)) {
      for (const s of renderFile('duckdb', file, params)) await execute(file, s.sql);
      continue;
    }
    const [b] = await rows(conn, 'SELECT buckets FROM metering_fold_buckets');
    const buckets = num(b!.buckets!);
    // The fold steps on one DuckDB thread. A parallel insert leaves each thread's partial row group
    // in memory until the transaction commits, so one per step and thread added up with the run's
    // number of steps (a 30 M entry run failed out of memory). The steps gain little from threads
    // anyway: metering_fold runs on the JavaScript thread. Restored only after the steps succeed:
    // a failed step aborts the transaction, where a SET would fail too and hide the step's error
    // (the run then rolls back and closes its database, setting and all).
    const [t] = await rows(conn, "SELECT current_setting('threads') AS threads");
    await conn.run('SET threads = 1');
    for (let bucket = 0; bucket < buckets; bucket++) for (const s of renderFile('duckdb', file, { ...params, bucket })) await execute(file, s.sql);
    await conn.run(`SET threads = ${num(t!.threads!)}`);
  }
}

async function changedDays(conn: DuckDBConnection, output: DailyOutput): Promise<number[]> {
  return (await rows(conn, `SELECT DISTINCT day_ms FROM metering_changed_days WHERE output = '${output}' ORDER BY day_ms`)).map((r) => num(r.day_ms!));
}

/** What the outputs lag behind: the days each run of this call changed, and its runs (their revisions). */
interface OutputsDue {
  days: Record<DailyOutput, Set<number>>;
  runs: number[];
}

const sorted = (days: Iterable<number>): number[] => [...new Set(days)].sort((a, b) => a - b);

/**
 * Rewrites the partitions the due runs changed; `full`: every partition (the outputs are missing, in
 * another format, or may lag the state after a call that was killed), a partition on disk whose day
 * has no rows left included, so it is removed.
 */
async function writeOutputs(conn: DuckDBConnection, out: string, format: OutputFormat, full: boolean, due: OutputsDue): Promise<number> {
  const w: PartitionWrite = { connection: conn, out, format, tables: { hourly: 'metering_hourly', intervals: 'metering_intervals', revisions: 'metering_revisions' } };
  let files = 0;
  const days = async (output: DailyOutput, column: string): Promise<number[]> =>
    full ? sorted([...(await allDays(conn, `metering_${output}`, column)), ...(await partitionDays(out, output)), ...due.days[output]]) : sorted(due.days[output]);
  files += await writeDays(w, 'hourly', await days('hourly', 'hour_ms'));
  files += await writeDays(w, 'intervals', await days('intervals', 'start_ms'));
  // Every run of the call, also one without revisions: its number may have been used by a run that
  // was killed after writing a partition of revisions it never committed.
  for (const r of full ? sorted([...(await allRevisionRuns(conn, 'metering_revisions')), ...due.runs]) : due.runs) files += await writeRevisions(w, r);
  if (full) await removeOtherFormat(out, format);
  return files;
}

/** Writes `file` only when its bytes change: a re-run with nothing new leaves it as it was. */
async function writeIfChanged(file: string, text: string): Promise<void> {
  const before = await fsp.readFile(file, 'utf8').catch(() => undefined);
  if (before !== text) await writeFileAtomic(file, text);
}

/**
 * DuckDB creates its write-ahead log (`<state>.wal`, the committed rows not yet checkpointed into
 * the database) with the process's umask, readable by everyone; it holds the same entries and
 * billed rows as the state, and stays behind when a run is killed. Private like the state.
 */
function keepWalPrivate(stateFile: string | undefined): void {
  if (!stateFile) return;
  try {
    fs.chmodSync(`${stateFile}.wal`, PRIVATE_FILE_MODE);
  } catch (err) {
    // None yet, or removed by a checkpoint: nothing to protect.
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

/** The flat files the consumer wrote before the partitioned layout (docs/consumer.md, "Migrating"). */
const LEGACY_OUTPUTS = ['intervals.ndjson', 'hourly.ndjson', 'revisions.ndjson'];

export async function runRollup(options: EngineOptions): Promise<RollupOutcome> {
  const log: Logger = options.logger ?? pino({ level: 'silent' });
  const progress = options.onProgress ?? ((): void => {});
  const { now, graceMs, staleAfterMs, retainMs, maxSkewMs } = rollupSettings(options);
  const format: OutputFormat = options.format ?? 'ndjson';
  const duck = await loadDuckDb();
  const { destination, prefix } = options.destination ?? (await openDestination(options.source));
  const stateFile = options.state ?? (options.out ? path.join(options.out, 'state.duckdb') : undefined);
  const lock = stateFile ? await acquireStateLock(stateFile) : undefined;
  let instance: Awaited<ReturnType<typeof duck.DuckDBInstance.create>> | undefined;
  let connection: DuckDBConnection | undefined;
  const tempDir = stateFile ? `${stateFile}.tmp` : path.join(os.tmpdir(), `metering-duckdb-${process.pid}`);
  try {
    assertSourceExists(destination, options.source);
    // Temp files of a run killed mid-write (kill -9) are litter: remove those of dead processes.
    for (const dir of new Set([stateFile && path.dirname(stateFile), options.out].filter((d): d is string => !!d))) {
      fs.mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
      await removeStaleTempFiles(dir);
    }
    if (options.out) for (const dir of await partitionDirs(options.out)) await removeStaleTempFiles(dir);
    // DuckDB spills to a private temp directory beside the state (or in the system's temp
    // directory for a run without state), never into the working directory.
    fs.mkdirSync(tempDir, { recursive: true, mode: PRIVATE_DIR_MODE });
    const config: Record<string, string> = { temp_directory: tempDir, memory_limit: options.memoryLimit ?? DEFAULT_MEMORY_LIMIT, preserve_insertion_order: 'false', ...ALLOCATOR_SETTINGS };
    if (options.threads !== undefined) config.threads = String(options.threads);
    if (stateFile && isLegacyState(stateFile)) {
      throw new StateFileError(
        `${stateFile} is a state file of the earlier JSON consumer, not a state database: point --state at a new file in the same directory (e.g. ${path.join(path.dirname(stateFile), 'state.duckdb')}) after renaming it to state.json there, and the first run carries its published rows over`,
      );
    }
    // A state of the earlier consumer beside a new database: carried over by the first run.
    let legacy = stateFile && isLegacyState(path.join(path.dirname(stateFile), 'state.json')) ? path.join(path.dirname(stateFile), 'state.json') : undefined;
    try {
      instance = await duck.DuckDBInstance.create(stateFile ?? ':memory:', config);
    } catch (err) {
      const message = (err as Error).message;
      if (/memory_limit|memory limit/i.test(message)) throw new Error(`--memory-limit ${options.memoryLimit}: ${message}`);
      throw new StateFileError(`cannot open state database ${stateFile}: ${message}`);
    }
    // Private like every consumer file: it holds every entry and what was billed.
    if (stateFile) fs.chmodSync(stateFile, PRIVATE_FILE_MODE);
    keepWalPrivate(stateFile);
    const conn = (connection = await instance.connect());
    registerMeteringFold(duck, conn);
    const base: RuleParams = { now_ms: now, grace_ms: graceMs, stale_after_ms: staleAfterMs, retain_ms: retainMs, max_skew_ms: maxSkewMs, run: 1, bucket_events: options.bucketEvents ?? DEFAULT_BUCKET_EVENTS };

    // Where a run's time and DuckDB's memory go, at debug level (with each statement's ms from
    // runRules): the memory by tag (duckdb_memory()) is how a run that grows out of its limit shows
    // what holds the memory.
    const debug = log.isLevelEnabled('debug');
    let phaseStarted = performance.now();
    const phaseDone = async (phase: string, detail: Record<string, number> = {}): Promise<void> => {
      if (!debug) return;
      const t = performance.now();
      const memory = Object.fromEntries(
        (await rows(conn, 'SELECT tag, memory_usage_bytes AS bytes FROM duckdb_memory() WHERE memory_usage_bytes > 0 ORDER BY tag')).map((r) => [str(r.tag!), Math.round(num(r.bytes!) / 1048576)]),
      );
      log.debug({ phase, ms: Math.round(t - phaseStarted), ...detail, duckdb_mib: memory }, 'metering rollup: phase');
      phaseStarted = performance.now();
    };
    const chunkBytes = options.chunkBytes ?? DEFAULT_CHUNK_BYTES;
    // Listed once, by the first run; a backlog bigger than chunkBytes is read by several runs
    // (backlog-chunks.ts), each one transaction, committed before the next begins.
    let listing: SourceListing | undefined;
    let chunks: ListedObject[][] = [];
    let newQuarantine: ListedObject[] = [];
    const listedAt = new Map<string, number>();
    const ledgerBad: LoadResult['bad'] = [];
    const done = { objects: 0, entries: 0, revisions: 0, files: 0 };
    let firstRun = 0;
    // Only the last run of a call writes the outputs: a run that holds the watermark would rewrite
    // the day partitions its stops fill in (a month of them, for a backlog), each again by the next
    // run. The days and runs they lag behind are gathered here, in memory, for the last run; should
    // the call be killed before it ends, the marker makes the next call rewrite every partition.
    const due: OutputsDue = { days: { hourly: new Set(), intervals: new Set() }, runs: [] };
    const outFiles = options.out ? { dir: options.out, pending: path.join(options.out, '.outputs-pending'), report: path.join(options.out, 'report.json') } : undefined;
    // Decided by the first run, before this call writes a marker of its own.
    let rewriteAll = false;
    for (let chunk = 0; ; chunk++) {
      // One transaction per run, the tables' creation included: a failure or a crash anywhere leaves
      // the database as the previous run left it (a first run that fails leaves no tables).
      await conn.run('BEGIN TRANSACTION');
      try {
        let meta: Meta;
        try {
          meta = await checkMeta(conn, stateFile ?? ':memory:', options.source);
        } catch (err) {
          if (err instanceof StateFileError) throw err;
          throw new StateFileError(`cannot read state database ${stateFile}: ${(err as Error).message}`);
        }
        for (const s of renderFile('duckdb', '00_state.sql', base)) await conn.run(s.sql);
        for (let v = (meta.migrateFrom ?? STATE_SCHEMA_VERSION) + 1; v <= STATE_SCHEMA_VERSION; v++) await migrate(conn, v);
        const [last] = await rows(conn, 'SELECT MAX(run) AS run FROM metering_runs');
        // The earlier consumer's state is carried over into a database that has no run yet (by
        // the first run only: after it commits, `legacy` is cleared).
        if (legacy && last!.run === null) {
          const carried = await importLegacyState(conn, legacy, options.source);
          log.info({ legacy, ...carried }, 'metering rollup: carrying the earlier consumer\'s state over (published rows and revisions kept; every object is read again)');
        } else legacy = undefined;
        const [afterImport] = legacy ? await rows(conn, 'SELECT MAX(run) AS run FROM metering_runs') : [last];
        const run = (afterImport!.run === null ? 0 : num(afterImport!.run!)) + 1;
        if (chunk === 0) firstRun = run;

        if (!listing) {
          progress({ phase: 'list', objectsDone: 0, objectsTotal: 0, entries: 0 });
          listing = await listSource(destination, prefix);
          const read = new Set((await rows(conn, 'SELECT object FROM metering_objects')).map((r) => str(r.object!)));
          const newLedger = listing.ledger.filter((o) => !read.has(o.name));
          newQuarantine = listing.quarantine.filter((o) => !read.has(o.name));
          read.clear();
          newLedger.forEach((o, i) => listedAt.set(o.name, i));
          chunks = planChunks(newLedger, chunkBytes);
          await phaseDone('open and list');
        }
        const ledger = chunks[chunk]!;
        const hold = chunk < chunks.length - 1;
        const params: RuleParams = { ...base, run, hold_watermark: hold ? 1 : 0 };
        const objectsTotal = listedAt.size + newQuarantine.length;
        const before = { ...done };
        const onProgress = (p: RollupProgress): void => progress({ ...p, objectsDone: before.objects + p.objectsDone, objectsTotal, entries: before.entries + p.entries });

        const load = options.loader ?? loadNewObjects;
        const loaded = await load(conn, destination, { run, ledger, quarantine: chunk === 0 ? newQuarantine : [], concurrency: options.concurrency ?? 8, log, onProgress });
        done.objects += loaded.objectsDone;
        done.entries += loaded.entries;
        // What every run of this invocation could not read, in the listing's order (as one run
        // reports it), then the node progress this run read.
        ledgerBad.push(...loaded.bad);
        ledgerBad.sort((a, b) => (listedAt.get(a.object) ?? listedAt.size) - (listedAt.get(b.object) ?? listedAt.size));
        const bad = [...ledgerBad];
        progress({ phase: 'compute', objectsDone: done.objects, objectsTotal, entries: done.entries });
        await appendNodeReads(conn, destination, listing.nodes, bad);
        await phaseDone('load');
        await runRules(conn, params, log, options.onStatement);
        await phaseDone('rules');

        const [rev] = await rows(conn, `SELECT COUNT(*) AS n FROM metering_revisions WHERE run = ${run}`);
        done.revisions += num(rev!.n!);
        due.runs.push(run);
        for (const output of ['hourly', 'intervals'] as const) for (const day of await changedDays(conn, output)) due.days[output].add(day);
        if (chunk === 0 && outFiles) {
          // Everything is written again when the outputs are not there (a new --out, a deleted one) or
          // were in another format, or when a call died between writing partitions (or committing a
          // run that held the watermark) and its last commit: the marker says so.
          rewriteAll = meta.format !== format || !fs.existsSync(outFiles.report) || fs.existsSync(outFiles.pending);
          // From the first commit of a call in chunks on, the outputs lag the state until its last.
          if (hold) await writeFileAtomic(outFiles.pending, `${run}\n`);
        }
        let report: RollupReport | undefined;
        let files = 0;
        if (!hold) {
          report = await readReport(conn, { source: options.source, now, graceMs, staleAfterMs, retainMs, maxSkewMs, run, bad, unknown: listing.unknown });
          await phaseDone('report');
          progress({ phase: 'write', objectsDone: done.objects, objectsTotal, entries: done.entries });
          lock?.check();
          if (outFiles) {
            await writeFileAtomic(outFiles.pending, `${run}\n`);
            files = await writeOutputs(conn, outFiles.dir, format, rewriteAll, due);
            if (meta.format !== format) await conn.run(`UPDATE metering_meta SET output_format = ${quote(format)}`);
            for (const legacy of LEGACY_OUTPUTS) await fsp.rm(path.join(outFiles.dir, legacy), { force: true });
            await writeIfChanged(outFiles.report, JSON.stringify(report, null, 2) + '\n');
          }
          done.files += files;
          await phaseDone('outputs', { files_written: files });
        }
        const collected = !hold && options.collectRows ? await readRows(conn, firstRun) : undefined;
        const hourly = !hold && options.selectHourly ? await readHourly(conn, options.selectHourly) : undefined;
        // State last: a crash before this line re-reads the same objects next time and writes the same bytes.
        lock?.check();
        await conn.run('COMMIT');
        keepWalPrivate(stateFile);
        await phaseDone('commit');
        if (!hold && outFiles) await fsp.rm(outFiles.pending, { force: true });
        // Kept as a backup, out of the way: the database is the state now.
        if (legacy) {
          await fsp.rename(legacy, `${legacy}.migrated`);
          legacy = undefined;
        }
        if (chunks.length > 1) {
          log.info({ chunk: chunk + 1, chunks: chunks.length, run, objects_read: loaded.objectsDone, entries_read: loaded.entries, holds_watermark: hold }, 'metering rollup: backlog chunk committed');
        }
        if (!report) continue; // it held the watermark: on to the next chunk
        const summary: RunSummary = { objects_read: done.objects, entries_read: done.entries, new_revisions: done.revisions, watermark: report.watermark };
        log.info({ ...summary, runs: chunks.length, bad_objects: bad.length, intervals: report.intervals.total, hourly_rows: report.hourly_rows.total, files_written: done.files }, 'metering rollup: done');
        return { report, run: summary, ...(collected ? { rows: collected } : {}), ...(hourly ? { hourly } : {}) };
      } catch (err) {
        await conn.run('ROLLBACK').catch(() => {});
        throw err;
      }
    }
  } finally {
    connection?.closeSync();
    instance?.closeSync();
    // The spill directory goes with the run (DuckDB removes its files; an empty directory is litter).
    if (!stateFile) fs.rmSync(tempDir, { recursive: true, force: true });
    else {
      try {
        fs.rmdirSync(tempDir);
      } catch {
        // Not empty (another process's spill) or already gone: leave it.
      }
    }
    await lock?.release();
  }
}
