/**
 * Where sqlglot can turn a statement of the BigQuery rendering into DuckDB SQL faithfully, its
 * result on the scenario fleet must equal the DuckDB rendering's. Each statement is checked on its
 * own, inside real runs of the engine: just before the engine runs a statement, the tables it reads
 * and writes are copied out (parquet), and after it runs, the table it writes; then, in a DuckDB of
 * the test's own (an error there must not abort the engine's transaction), the copies are loaded
 * under the names the transpiled BigQuery text uses, the transpiled statement runs on them, and the
 * table it writes is compared with the engine's.
 *
 * sqlglot (Debian's) does not transpile every statement faithfully (it drops STRUCT(e AS n) field
 * names, turns DIV into a rounding cast, keeps GENERATE_ARRAY, drops NULLS FIRST, writes
 * correlated UNNEST aliases DuckDB cannot parse, does not parse DELETE ... AS alias). The statements
 * built on those are not compared;
 * the test checks that they really do not transpile faithfully, so a sqlglot that learns them
 * shows up here.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { renderRules, runRollup, type RuleParams, type SqlSession } from 'metering-ledger/sink';
import { renderFile } from '../sink/sql/render.js';
import { TestBucket } from './support/consumer-bucket.js';
import { FLEET_GRACE_MS, FLEET_STALE_AFTER_MS, handBuiltFleet } from './support/twin-fleet.js';
import { haveTool } from './support/tools.js';
import { tempDir } from './support/tmp.js';

const PYTHON = '/usr/bin/python3';
const TRANSPILE = fileURLToPath(new URL('./support/sqlglot-transpile.py', import.meta.url));
const available = haveTool(PYTHON, 'python3') && haveTool('/usr/lib/python3/dist-packages/sqlglot/__init__.py', 'python3-sqlglot');
/** Small fold buckets: the per-bucket statements run several times per run. */
const BUCKET_EVENTS = 5;

/** Statements (file#ordinal: the table they write) whose BigQuery text sqlglot transpiles faithfully: equal in every run. */
const FAITHFUL = [
  '10_run.sql#0: runs',
  '10_run.sql#1: runs',
  '20_kept.sql#0: touched',
  '20_kept.sql#1: kept_before',
  '20_kept.sql#3: copy_ranks',
  '20_kept.sql#4: kept_touched',
  '20_kept.sql#5: kept',
  '20_kept.sql#6: kept',
  '20_kept.sql#7: kept_changes',
  '20_kept.sql#8: findings',
  '20_kept.sql#9: findings',
  '20_kept.sql#10: entries',
  '20_kept.sql#11: seq_groups',
  '20_kept.sql#13: findings',
  '20_kept.sql#14: writer_nodes',
  '20_kept.sql#15: seq_redo',
  '20_kept.sql#16: seq_ranges',
  '30_resources.sql#0: affected',
  '30_resources.sql#3: fold_rows',
  '30_resources.sql#4: fold_buckets',
  '42_fold_results.sql#0: fold_new_intervals',
  '42_fold_results.sql#1: fold_new_intervals',
  '42_fold_results.sql#2: fold_new_anomalies',
  '42_fold_results.sql#3: fold_new_anomalies',
  '42_fold_results.sql#4: fold_new_state',
  '42_fold_results.sql#5: fold_new_state',
  '45_apply.sql#1: fold_intervals',
  '45_apply.sql#2: fold_intervals',
  '45_apply.sql#4: anomalies',
  '45_apply.sql#6: resource_state',
  '50_nodes.sql#0: nodes',
  '50_nodes.sql#1: watermark',
  '60_intervals.sql#0: candidates',
  '60_intervals.sql#1: intervals_old',
  '60_intervals.sql#2: intervals_new',
  '60_intervals.sql#6: intervals',
  '60_intervals.sql#7: intervals',
  '70_hourly.sql#1: hourly_old',
  '70_hourly.sql#2: publication',
  '70_hourly.sql#4: revisions',
  '70_hourly.sql#6: hourly',
  '70_hourly.sql#7: hourly',
  '70_hourly.sql#8: hourly',
  '80_seq_gaps.sql#0: seq_gaps',
  '90_state.sql#0: node_known',
  '90_state.sql#1: runs',
  '90_state.sql#2: entries_new',
  '90_state.sql#3: pending_dirty',
  '90_state.sql#4: pending_dirty',
  '20_kept.sql#12: findings',
  '45_apply.sql#0: fold_intervals',
  '45_apply.sql#3: anomalies',
  '45_apply.sql#5: resource_state',
  '60_intervals.sql#5: intervals',
  '70_hourly.sql#5: hourly',
];
/** Statements sqlglot does not transpile faithfully (why, as seen): at least one run must show it, or they move to FAITHFUL. */
const UNFAITHFUL: Record<string, string> = {
  '30_resources.sql#2: fold_start': 'STRUCT field names',
  '30_resources.sql#1: fold_input': 'DIV becomes a rounding cast',
  '40_fold.bucket.sql#0: fold_rows': 'the fold STRUCT and UNNEST',
  '60_intervals.sql#3: changed_days': 'DIV becomes an INT cast: overflow',
  '60_intervals.sql#4: dirty': 'DIV becomes an INT cast: overflow',
  '70_hourly.sql#0: totals': 'GENERATE_ARRAY, STRUCT',
  '70_hourly.sql#3: changed_days': 'DIV becomes an INT cast: overflow',
};

function transpile(statements: string[]): { sql: string | null; error: string | null }[] {
  const r = spawnSync(PYTHON, [TRANSPILE], { input: JSON.stringify(statements), encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`sqlglot transpile failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as { sql: string | null; error: string | null }[];
}

const stripComments = (sql: string): string => sql.replace(/^(\s*--[^\n]*\n)*\s*/, '');
const WRITES = /^(?:CREATE OR REPLACE TABLE|INSERT INTO|DELETE FROM|UPDATE|MERGE INTO)\s+(metering_[a-z_]+)/;
const q = (s: string): string => `'${s.replaceAll("'", "''")}'`;

/** One statement as the engine ran it: its BigQuery text, and copies of the tables around it. */
interface Checked {
  key: string;
  bigquery: string;
  target: string;
  before: Map<string, string>;
  after: string;
}

const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});

describe('sqlglot transpilation of the BigQuery rendering', () => {
  it.runIf(available)("every statement it transpiles faithfully gives the DuckDB rendering's result on the scenario fleet, run after run", async () => {
    const t = tempDir('sql-transpile');
    cleanups.push(t.cleanup);
    const bucket = new TestBucket(path.join(t.dir, 'bucket'));
    const state = path.join(t.dir, 'state.duckdb');
    const fleet = await handBuiltFleet(bucket);
    const checked: Checked[] = [];

    const runOnce = async (now: number, run: number): Promise<void> => {
      const params: RuleParams = { now_ms: now, grace_ms: FLEET_GRACE_MS, stale_after_ms: FLEET_STALE_AFTER_MS, retain_ms: 604_800_000, max_skew_ms: 2_592_000_000, run, bucket_events: BUCKET_EVENTS };
      // Each DuckDB statement of this run -> its key and BigQuery text (a bucket file once per bucket).
      const counterpart = new Map<string, { key: string; bigquery: string }>();
      const files = [...new Set(renderRules('duckdb', params).map((s) => s.file))].filter((f) => !f.startsWith('00_'));
      for (const file of files) {
        for (let bucketNo = 0; bucketNo < (file.endsWith('.bucket.sql') ? 64 : 1); bucketNo++) {
          const p = { ...params, bucket: bucketNo };
          const duck = renderFile('duckdb', file, p);
          const bq = renderFile('bigquery', file, p);
          expect(bq.length, file).toBe(duck.length);
          duck.forEach((s, i) => {
            const target = WRITES.exec(stripComments(s.sql))?.[1];
            if (target) counterpart.set(s.sql, { key: `${file}#${i}: ${target.slice('metering_'.length)}`, bigquery: bq[i]!.sql });
          });
        }
      }
      let n = 0;
      const onStatement = async (sql: string, execute: () => Promise<void>, session: SqlSession): Promise<void> => {
        const c = counterpart.get(sql);
        if (!c) return execute();
        const dir = path.join(t.dir, 'copies', `${run}-${n++}`);
        fs.mkdirSync(dir, { recursive: true });
        const existing = new Set((await session.rows("SELECT table_name FROM information_schema.tables WHERE table_name LIKE 'metering\\_%' ESCAPE '\\'")).map((r) => String(r.table_name)));
        const target = WRITES.exec(stripComments(sql))![1]!;
        const before = new Map<string, string>();
        for (const table of new Set([...sql.matchAll(/\bmetering_[a-z_]+\b/g)].map((m) => m[0]))) {
          if (!existing.has(table)) continue; // a function (metering_fold) or a table this statement creates
          const file = path.join(dir, `${table}.parquet`);
          await session.run(`COPY ${table} TO ${q(file)} (FORMAT parquet)`);
          before.set(table, file);
        }
        await execute();
        const after = path.join(dir, `after-${target}.parquet`);
        await session.run(`COPY ${target} TO ${q(after)} (FORMAT parquet)`);
        checked.push({ key: c.key, bigquery: c.bigquery, target, before, after });
      };
      await runRollup({ source: bucket.dir, state, now, graceMs: FLEET_GRACE_MS, staleAfterMs: FLEET_STALE_AFTER_MS, bucketEvents: BUCKET_EVENTS, onStatement });
    };

    await runOnce(fleet.now, 1);
    await runOnce(await fleet.comeBack(), 2);

    // The transpiled statements, each on the copies, in a DuckDB of the test's own.
    const transpiled = transpile(checked.map((c) => c.bigquery));
    const { DuckDBInstance } = await import('@duckdb/node-api');
    const verdicts = new Map<string, string[]>();
    for (const [i, c] of checked.entries()) {
      const list = verdicts.get(c.key) ?? [];
      verdicts.set(c.key, list);
      const tr = transpiled[i]!;
      if (!tr.sql) {
        list.push(`not transpiled: ${tr.error}`);
        continue;
      }
      const instance = await DuckDBInstance.create(':memory:');
      const conn = await instance.connect();
      try {
        // The names sqlglot gives BigQuery's `metering.x`: one identifier, "metering.x".
        for (const [table, file] of c.before) await conn.run(`CREATE TABLE "metering.${table.slice('metering_'.length)}" AS SELECT * FROM read_parquet(${q(file)})`);
        try {
          await conn.run(tr.sql);
        } catch (err) {
          list.push(`fails on DuckDB: ${(err as Error).message.split('\n')[0]}`);
          continue;
        }
        const mine = `"metering.${c.target.slice('metering_'.length)}"`;
        const theirs = `read_parquet(${q(c.after)})`;
        try {
          const r = await conn.runAndReadAll(
            `SELECT (SELECT COUNT(*) FROM (SELECT * FROM ${mine} EXCEPT ALL SELECT * FROM ${theirs})) + (SELECT COUNT(*) FROM (SELECT * FROM ${theirs} EXCEPT ALL SELECT * FROM ${mine})) AS n, (SELECT COUNT(*) FROM ${theirs}) AS rows`,
          );
          const [diff, rows] = r.getRows()[0]!;
          list.push(String(diff) === '0' ? `equal (${String(rows)} rows)` : `differs: ${String(diff)}`);
        } catch (err) {
          list.push(`not comparable: ${(err as Error).message.split('\n')[0]}`);
        }
      } finally {
        conn.closeSync();
        instance.closeSync();
      }
    }

    const report = Object.fromEntries(verdicts);
    const shown = JSON.stringify(report, null, 1);
    for (const key of FAITHFUL) {
      expect(report[key], `${key} ran in both runs:\n${shown}`).toBeDefined();
      expect(report[key]!.length, key).toBeGreaterThanOrEqual(2);
      for (const v of report[key]!) expect(v, `${key}: ${JSON.stringify(report[key])}`).toMatch(/^equal/);
    }
    // The comparison has rows to compare, and the unfaithful ones are really unfaithful (else they belong above).
    expect(FAITHFUL.filter((k) => report[k]!.some((v) => !v.startsWith('equal (0'))).length).toBeGreaterThanOrEqual(FAITHFUL.length / 2);
    for (const key of Object.keys(UNFAITHFUL)) {
      expect(report[key], `${key}:\n${shown}`).toBeDefined();
      expect(report[key]!.some((v) => !v.startsWith('equal')), `${key} (${UNFAITHFUL[key]}): ${JSON.stringify(report[key])}`).toBe(true);
    }
    // Every statement that writes a table is in one list or the other: a new statement is classified, not skipped.
    expect(Object.keys(report).filter((k) => !FAITHFUL.includes(k) && !(k in UNFAITHFUL))).toEqual([]);
  });
});
