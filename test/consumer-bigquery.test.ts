/**
 * `metering rollup --engine bigquery` through the real CLI process and the real
 * `@google-cloud/bigquery` client, against a BigQuery REST test server (test/support/bigquery-server.ts:
 * it records the SQL and runs none of it) and the GCS test server holding the shipped objects.
 * What is proven here: setup errors (missing dataset, no or broken credentials, bad flags) exit 2
 * quickly by themselves; a job that never finishes is cancelled at --bq-timeout; a run reads only
 * the dt partitions its new objects fall in (asserted on the SQL a second run sends after new
 * objects land on one day), never the whole ledger/; every statement sent parses with sqlglot's
 * bigquery dialect. Nothing here runs on real BigQuery.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { serializeEntry, type LedgerEntry } from 'metering-ledger';
import { nodeProgressName, objectName, openDestination, type Destination } from 'metering-ledger/sink';
import { startBigQueryServer, type BigQueryTestServer, type CellValue } from './support/bigquery-server.js';
import { startGcsServer, type GcsTestServer } from './support/gcs-server.js';
import { spawnCli, waitExit, type Exited } from './support/spawn.js';
import { tempDir } from './support/tmp.js';
import { parseablePieces as parseable, parseBigQuery as parse, sqlglotAvailable as sqlglot } from './support/sqlglot.js';

const DATASET = 'proj.metering';
const NOW = '2026-11-22T00:00:00Z';
const GiB = 1024 ** 3;
/** What "fast" means for a setup error: the process ends by itself long before any job timeout. */
const SETUP_DEADLINE_MS = 30_000;

let gcs: GcsTestServer;
let bq: BigQueryTestServer;
let bucket: Destination;
let root: string;
let cleanup: () => void;

/** No Google credentials of the machine running the tests may leak in, nor a metadata server be asked. */
function isolatedEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, HOME: path.join(root, 'home'), METERING_LOG_LEVEL: 'warn', METADATA_SERVER_DETECTION: 'none', ...extra };
  for (const k of ['GOOGLE_APPLICATION_CREDENTIALS', 'GOOGLE_CLOUD_PROJECT', 'GCLOUD_PROJECT', 'BIGQUERY_EMULATOR_HOST', 'STORAGE_EMULATOR_HOST', 'CLOUDSDK_CONFIG']) if (!(k in extra)) delete env[k];
  return env;
}

/** Runs the CLI; fails (and kills it) if it has not exited by itself within `deadlineMs`. */
async function metering(args: string[], options: { env?: NodeJS.ProcessEnv; deadlineMs?: number } = {}): Promise<Exited & { ms: number }> {
  const started = Date.now();
  const child = spawnCli(args, { env: options.env ?? isolatedEnv() });
  const deadline = options.deadlineMs ?? 120_000;
  let timer: NodeJS.Timeout | undefined;
  const killed = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`metering ${args.join(' ')} did not exit by itself within ${deadline} ms`));
    }, deadline);
  });
  try {
    const exited = await Promise.race([waitExit(child), killed]);
    return { ...exited, ms: Date.now() - started };
  } finally {
    clearTimeout(timer);
  }
}

const rollupArgs = (extra: string[] = []): string[] => [
  'rollup',
  '--engine',
  'bigquery',
  '--bq-dataset',
  DATASET,
  '--source',
  'gs://ledgers/fleet',
  '--endpoint',
  gcs.url,
  '--out',
  path.join(root, 'out'),
  '--now',
  NOW,
  ...extra,
];

let seq = 0;
function entry(node: string, vm: string, kind: LedgerEntry['kind'], reason: LedgerEntry['reason'], emittedAt: string): LedgerEntry {
  seq++;
  return { v: 1, id: `id-${node}-${seq}`, node, writer: `w-${node}`, seq, kind, vm_id: vm, reason, shape: { cpu: 2, mem_bytes: 4 * GiB, storage_bytes: 20 * GiB }, emitted_at: emittedAt };
}

/** Ships one object the way the shipper names it: the day (dt) is the segment's creation date. */
async function ship(node: string, segment: string, entries: LedgerEntry[], gzip = false): Promise<string> {
  const body = Buffer.from(entries.map((e) => serializeEntry(e) + '\n').join(''));
  const name = objectName('fleet', 'ledger', node, segment, 0, body.length, gzip);
  await bucket.putIfAbsent(name, gzip ? gzipSync(body) : body);
  return name;
}

async function progress(node: string, completeThrough: string): Promise<void> {
  const p = { v: 1, node, reported_at: completeThrough, complete_through: completeThrough, backlog_bytes: 0, writers: { [`w-${node}`]: { last_seq: seq, last_emitted_at: completeThrough } } };
  await bucket.put(nodeProgressName('fleet', node), Buffer.from(JSON.stringify(p) + '\n'));
}

/** What BigQuery would answer for the report's summary query (the test server runs no SQL). */
function summaryRow(over: Record<string, CellValue> = {}): Record<string, CellValue> {
  return {
    watermark_ms: Date.parse('2026-11-21T12:00:00Z'),
    computed_ms: Date.parse('2026-11-21T12:00:00Z'),
    min_complete_ms: Date.parse('2026-11-21T12:05:00Z'),
    horizon_ms: Date.parse('2026-11-14T12:00:00Z'),
    entries_read: 6,
    ids: 6,
    entries_new: 6,
    ledger_read: 2,
    quarantine_read: 0,
    quarantined: 0,
    invalid: 0,
    revisions: 0,
    new_revisions: 0,
    intervals_total: 2,
    intervals_open: 1,
    intervals_unconfirmed: 0,
    hourly_total: 30,
    hourly_final: 28,
    gap_writers: 0,
    gap_missing: 0,
    ...over,
  };
}

beforeAll(async () => {
  gcs = await startGcsServer({ buckets: ['ledgers'] });
  ({ dir: root, cleanup } = tempDir('consumer-bigquery'));
  fs.mkdirSync(path.join(root, 'home'));
  ({ destination: bucket } = await openDestination('gs://ledgers/fleet', { endpoint: gcs.url }));
});
afterAll(async () => {
  await bq?.stop();
  await gcs?.stop();
  cleanup();
});
beforeEach(async () => {
  await bq?.stop();
  bq = await startBigQueryServer({ datasets: [DATASET] });
});

describe('metering rollup --engine bigquery: setup errors exit 2, by themselves, quickly', () => {
  it('a dataset that does not exist: exit 2 naming it, with the command that creates it; no job sent', async () => {
    const r = await metering(rollupArgs(['--bq-endpoint', bq.url, '--bq-dataset', 'proj.nope']), { deadlineMs: SETUP_DEADLINE_MS });
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/BigQuery dataset proj\.nope does not exist/);
    expect(r.stderr).toMatch(/bq mk --dataset/);
    expect(bq.requests).toContain('GET /projects/proj/datasets/nope');
    expect(bq.queries).toEqual([]);
    expect(fs.existsSync(path.join(root, 'out', 'report.json'))).toBe(false);
  });

  it('no credentials at all (no ADC, no key file, no metadata server): exit 2 with the hint', async () => {
    const r = await metering(rollupArgs(), { deadlineMs: SETUP_DEADLINE_MS });
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/no usable Google credentials/);
    expect(r.stderr).toMatch(/gcloud auth application-default login/);
  });

  it('a key file that is missing or not a key: exit 2 with the hint', async () => {
    const garbage = path.join(root, 'key.json');
    fs.writeFileSync(garbage, '{"type": "service_account", "oops": true}\n');
    for (const key of [garbage, path.join(root, 'no-such-key.json')]) {
      const r = await metering(rollupArgs(), { env: isolatedEnv({ GOOGLE_APPLICATION_CREDENTIALS: key }), deadlineMs: SETUP_DEADLINE_MS });
      expect(r.code, `${key}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toMatch(/no usable Google credentials/);
      expect(r.stderr).toMatch(/GOOGLE_APPLICATION_CREDENTIALS/);
    }
  });

  it('flags that do not fit: --bq-* without the engine, the engine without a dataset, a local --source, --state', async () => {
    const local = path.join(root, 'local-bucket');
    fs.mkdirSync(local, { recursive: true });
    const cases: [string[], RegExp][] = [
      [['rollup', '--source', local, '--out', path.join(root, 'o1'), '--bq-dataset', DATASET], /--bq-dataset is only valid with --engine bigquery/],
      [['rollup', '--engine', 'bigquery', '--source', 'gs://ledgers/fleet', '--out', path.join(root, 'o2')], /needs --bq-dataset/],
      [['rollup', '--engine', 'bigquery', '--bq-dataset', DATASET, '--source', local, '--out', path.join(root, 'o3')], /is not a gs:\/\/ URL/],
      [['rollup', '--engine', 'bigquery', '--bq-dataset', 'nodot', '--source', 'gs://ledgers/fleet', '--out', path.join(root, 'o4')], /PROJECT\.DATASET/],
      [['rollup', '--engine', 'bigquery', '--bq-dataset', DATASET, '--source', 'gs://ledgers/fleet', '--out', path.join(root, 'o5'), '--state', path.join(root, 's')], /state lives in the dataset/],
      [['rollup', '--engine', 'oracle', '--source', local, '--out', path.join(root, 'o6')], /--engine: Allowed choices are duckdb, bigquery/],
    ];
    for (const [args, message] of cases) {
      const r = await metering(args, { deadlineMs: SETUP_DEADLINE_MS });
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr, args.join(' ')).toMatch(message);
      expect(r.stdout).toBe('');
    }
    const help = await metering(['rollup', '--help'], { deadlineMs: SETUP_DEADLINE_MS });
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/--engine <engine>[\s\S]*--bq-dataset[\s\S]*--bq-location[\s\S]*--bq-timeout/);
    expect(help.stdout).toMatch(/Exit codes: 0 success, 1 failure while working, 2 bad input/);
  });

  it('a job that never finishes is cancelled at --bq-timeout: exit 1, by itself', async () => {
    bq.holdJobs(/CREATE OR REPLACE TABLE `proj\.metering\.kept_touched`/);
    const r = await metering(rollupArgs(['--bq-endpoint', bq.url, '--bq-timeout', '1500ms']), { deadlineMs: 60_000 });
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/BigQuery job for 20_kept\.sql did not finish within --bq-timeout/);
    const held = bq.queries.find((q) => q.sql.includes("CREATE OR REPLACE TABLE `proj.metering.kept_touched`"))!;
    expect(held.jobTimeoutMs).toBe('1500');
    expect(bq.cancelled).toContain(held.jobId);
    // Nothing after the held statement was sent.
    expect(bq.queries[bq.queries.length - 1]).toBe(held);
  });
});

describe('metering rollup --engine bigquery: what a run sends', () => {
  it('reads only the dt partitions of new objects (a second run after objects land on one day), and every statement parses', async () => {
    // Run 1: one plain object on 2026-11-20, one gzip object on 2026-11-21.
    const day1 = await ship('n1', 'ledger-20261120T080000000Z-aaaaaaaa.jsonl', [
      entry('n1', 'vm-1', 'vm.compute.start', 'boot', '2026-11-20T08:00:00.000Z'),
      entry('n1', 'vm-1', 'vm.compute.running', 'baseline', '2026-11-20T20:00:00.000Z'),
      entry('n1', 'vm-1', 'vm.compute.stop', 'stop-user', '2026-11-20T22:30:00.000Z'),
    ]);
    const day2gz = await ship('n1', 'ledger-20261121T000000000Z-bbbbbbbb.jsonl', [entry('n1', 'vm-2', 'vm.compute.start', 'boot', '2026-11-21T01:00:00.000Z')], true);
    await progress('n1', '2026-11-21T12:05:00.000Z');
    bq.respond(/AS gap_missing/, [summaryRow()]);
    const run1 = await metering(rollupArgs(['--bq-endpoint', bq.url]));
    expect(run1.code, run1.stderr).toBe(0);
    expect(run1.stdout).toMatch(/read partitions 2026-11-20, 2026-11-21/);
    const first = bq.queries.map((q) => q.sql);
    // Credentials never go to a test server.
    expect(bq.queries.every((q) => q.authorization === undefined)).toBe(true);
    // The external tables point at this source, with no placeholder left.
    const ddl = first.filter((s) => s.startsWith('CREATE OR REPLACE EXTERNAL TABLE'));
    expect(ddl.length).toBeGreaterThanOrEqual(4);
    expect(ddl.join('\n')).toContain("uris = ['gs://ledgers/fleet/ledger/*.ndjson']");
    expect(ddl.join('\n')).toContain("hive_partition_uri_prefix = 'gs://ledgers/fleet/ledger'");
    expect(first.join('\n')).not.toMatch(/gs:\/\/BUCKET|\/PREFIX\//);
    expect(ddl.join('\n')).not.toMatch(/(?<![`\w.-])metering\./);
    const stage1 = first.find((s) => s.startsWith('CREATE OR REPLACE TABLE `proj.metering.staged_lines` AS'))!;
    expect(stage1).toContain("FROM `proj.metering.ledger_lines_plain` WHERE dt IN (DATE '2026-11-20')");
    expect(stage1).toContain("FROM `proj.metering.ledger_lines_gz` WHERE dt IN (DATE '2026-11-21')");
    // The fold runs as a temp function in the script of the statement that calls it.
    expect(first.some((s) => s.startsWith('-- Contract v2 per-resource machine') && s.includes('CREATE TEMP FUNCTION metering_fold(') && s.includes("`proj.metering.fold_rows`"))).toBe(true);
    const report = JSON.parse(fs.readFileSync(path.join(root, 'out', 'report.json'), 'utf8')) as { watermark: string; source: string; nodes: unknown[] };
    expect(report.watermark).toBe('2026-11-21T12:00:00.000Z');
    expect(report.source).toBe('gs://ledgers/fleet');
    // A v3 state (the test server counts no v2 column): one metadata query says so, no migration DDL.
    expect(first.filter((s) => s.includes('INFORMATION_SCHEMA.COLUMNS'))).toHaveLength(1);
    expect(first.filter((s) => s.includes('ALTER TABLE') || s.includes('touched_copies'))).toEqual([]);

    // Run 2: BigQuery holds run 1's objects; one new plain object lands on 2026-11-21 only.
    bq.clearQueries();
    bq.respond(/SELECT COALESCE\(MAX\(run\), 0\) AS run FROM `proj\.metering\.runs`/, [{ run: 1 }]);
    bq.respond(/^SELECT object FROM `proj\.metering\.objects`$/, [{ object: day1 }, { object: day2gz }]);
    // As if the dataset were a state of schema v2: its `entries` has a v2 column.
    bq.respond(/INFORMATION_SCHEMA\.COLUMNS/, [{ n: 1 }]);
    const day2 = await ship('n1', 'ledger-20261121T100000000Z-cccccccc.jsonl', [entry('n1', 'vm-2', 'vm.compute.stop', 'stop-user', '2026-11-21T11:00:00.000Z')]);
    const run2 = await metering(rollupArgs(['--bq-endpoint', bq.url]));
    expect(run2.code, run2.stderr).toBe(0);
    expect(run2.stdout).toMatch(/read partitions 2026-11-21;/);
    const second = bq.queries.map((q) => q.sql);
    // Migrated in place, once, before the rules: v2's columns of `entries` and its scratch table go.
    const migration = second.filter((s) => s.includes('ALTER TABLE `proj.metering.entries` DROP COLUMN IF EXISTS '));
    expect(migration).toHaveLength(14);
    expect(second.filter((s) => s.includes('DROP TABLE IF EXISTS `proj.metering.touched_copies`'))).toHaveLength(1);
    expect(second.indexOf(migration[0]!)).toBeLessThan(second.findIndex((s) => s.startsWith('INSERT INTO `proj.metering.runs`')));
    // Exactly one statement reads the ledger's files, and only the new object's day, of the plain table.
    const reads = second.filter((s) => !s.startsWith('CREATE OR REPLACE EXTERNAL TABLE') && !s.startsWith('CREATE OR REPLACE VIEW') && /`proj\.metering\.(ledger_lines_plain|ledger_lines_gz|ledger_plain|ledger_gz|ledger)`/.test(s));
    expect(reads).toHaveLength(1);
    expect(reads[0]!.match(/WHERE dt IN \([^)]*\)/g)).toEqual(["WHERE dt IN (DATE '2026-11-21')"]);
    expect(reads[0]).not.toContain('ledger_lines_gz');
    const newObjects = second.filter((s) => s.startsWith('INSERT INTO `proj.metering.new_objects`'));
    expect(newObjects).toHaveLength(1);
    expect(newObjects[0]).toContain(`'${day2}'`);
    expect(newObjects[0]).not.toContain(day1);
    expect(newObjects[0]).not.toContain(day2gz);
    // Run 2 is run 2: what an unfinished run 2 wrote is removed first; the rules get run = 2.
    expect(second).toContain('DELETE FROM `proj.metering.entries` WHERE run >= 2');
    expect(second.some((s) => /INSERT INTO `proj\.metering\.runs`[\s\S]*SELECT\s+2,/.test(s))).toBe(true);
    if (!sqlglot) return;
    const pieces = [...first, ...second].flatMap(parseable);
    const results = parse(pieces);
    const failed = results.map((r, i) => ({ ...r, sql: pieces[i]!.slice(0, 300) })).filter((r) => !r.ok);
    expect(failed).toEqual([]);
  });

  it.runIf(sqlglot)('the parse check can fail: a broken staging statement and a broken option are rejected', () => {
    const broken = [
      "CREATE OR REPLACE TABLE `p.d.staged_lines` AS WITH lines AS (SELECT _FILE_NAME AS uri, line FROM `p.d.ledger_lines_plain` WHERE dt IN (DATE '2026-11-20') SELECT * FROM lines",
      ...parseable("CREATE OR REPLACE EXTERNAL TABLE `p.d.x` (line STRING) OPTIONS (format = 'CSV', uris = ['gs://b/x/*.ndjson')"),
    ];
    expect(parse(broken).some((r) => !r.ok)).toBe(true);
    expect(parse([broken[0]!])[0]!.ok).toBe(false);
  });
});
