/**
 * Where sqlglot can turn a statement of the BigQuery rendering into DuckDB SQL faithfully, its
 * result on the scenario fleet must equal the DuckDB rendering's. Each statement is checked on its
 * own, inside real runs of the DuckDB engine: just before the engine runs statement i, the tables
 * as they stand are copied under the names the transpiled BigQuery text uses, the transpiled
 * statement runs on them, and its table is compared with the one the DuckDB rendering then makes.
 *
 * sqlglot (10.6, Debian) does not transpile every statement faithfully: it drops STRUCT(e AS n)
 * fields, turns DIV into a rounding cast, keeps GENERATE_ARRAY (not a DuckDB function), drops
 * NULLS FIRST and writes correlated UNNEST aliases DuckDB cannot parse. The statements built on
 * those (the fold and its unnesting, the hour split, the revisions' order) are not compared; the
 * test checks that they really do not transpile, so a sqlglot that learns them shows up here.
 */
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { renderRules, runRollup, type RuleParams, type SqlSession } from 'metering-ledger/sink';
import { TestBucket } from './support/consumer-bucket.js';
import { FLEET_GRACE_MS, FLEET_STALE_AFTER_MS, handBuiltFleet } from './support/twin-fleet.js';
import { haveTool } from './support/tools.js';
import { tempDir } from './support/tmp.js';

const PYTHON = '/usr/bin/python3';
const TRANSPILE = fileURLToPath(new URL('./support/sqlglot-transpile.py', import.meta.url));
const available = haveTool(PYTHON, 'python3') && haveTool('/usr/lib/python3/dist-packages/sqlglot/__init__.py', 'python3-sqlglot');

/** Statements whose BigQuery text sqlglot transpiles faithfully: these must agree in every run. */
const FAITHFUL = ['kept', 'writer_nodes', 'findings', 'nodes', 'watermark', 'intervals', 'publication', 'seq_gaps', 'published', 'node_known'];

function transpile(statements: string[]): { sql: string | null; error: string | null }[] {
  const r = spawnSync(PYTHON, [TRANSPILE], { input: JSON.stringify(statements), encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`sqlglot transpile failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as { sql: string | null; error: string | null }[];
}

const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});

describe('sqlglot transpilation of the BigQuery rendering', () => {
  it.runIf(available)('every statement it transpiles faithfully gives the DuckDB rendering\'s result on the scenario fleet, run after run', async () => {
    const t = tempDir('sql-transpile');
    cleanups.push(t.cleanup);
    const bucket = new TestBucket(path.join(t.dir, 'bucket'));
    const state = path.join(t.dir, 'state.duckdb');
    const fleet = await handBuiltFleet(bucket);
    const outcome = new Map<string, string[]>(); // table -> per-run verdicts

    const runOnce = async (now: number, run: number): Promise<void> => {
      const params: RuleParams = { now_ms: now, grace_ms: FLEET_GRACE_MS, stale_after_ms: FLEET_STALE_AFTER_MS, retain_ms: 604_800_000, max_skew_ms: 2_592_000_000, run };
      // The engine hands every statement after the schema (00_state.sql) to onStatement, in order.
      const bigquery = renderRules('bigquery', params).filter((s) => !s.file.startsWith('00_'));
      const transpiled = transpile(bigquery.map((s) => s.sql));
      let index = 0;
      const onStatement = async (_sql: string, execute: () => Promise<void>, session: SqlSession): Promise<void> => {
        const i = index++;
        const target = /^CREATE OR REPLACE TABLE `metering\.([a-z_]+)`/.exec(bigquery[i]!.sql.replace(/^(\s*--[^\n]*\n)*\s*/, ''))?.[1];
        const tr = transpiled[i]!;
        if (!target) return execute();
        const verdicts = outcome.get(target) ?? [];
        outcome.set(target, verdicts);
        if (!tr.sql) {
          verdicts.push(`not transpiled: ${tr.error}`);
          return execute();
        }
        // The tables as they stand, under the names sqlglot gives them ("metering.x", one identifier).
        for (const r of await session.rows("SELECT table_name FROM information_schema.tables WHERE table_name LIKE 'metering\\_%' ESCAPE '\\'")) {
          const name = String(r.table_name);
          await session.run(`CREATE OR REPLACE TABLE "metering.${name.slice('metering_'.length)}" AS SELECT * FROM ${name}`);
        }
        let ran = true;
        try {
          await session.run(tr.sql);
        } catch (err) {
          ran = false;
          verdicts.push(`fails on DuckDB: ${(err as Error).message.split('\n')[0]}`);
        }
        await execute();
        if (!ran) return;
        const [diff] = await session.rows(
          `SELECT (SELECT COUNT(*) FROM (SELECT * FROM "metering.${target}" EXCEPT ALL SELECT * FROM metering_${target})) + (SELECT COUNT(*) FROM (SELECT * FROM metering_${target} EXCEPT ALL SELECT * FROM "metering.${target}")) AS n, (SELECT COUNT(*) FROM metering_${target}) AS rows`,
        ).catch((err: Error) => [{ n: `not comparable: ${err.message.split('\n')[0]}`, rows: 0 }]);
        verdicts.push(String(diff!.n) === '0' ? `equal (${String(diff!.rows)} rows)` : `differs: ${String(diff!.n)}`);
      };
      await runRollup({ source: bucket.dir, state, now, graceMs: FLEET_GRACE_MS, staleAfterMs: FLEET_STALE_AFTER_MS, onStatement });
    };

    await runOnce(fleet.now, 1);
    await runOnce(await fleet.comeBack(), 2);

    const report = Object.fromEntries(outcome);
    for (const table of FAITHFUL) {
      expect(report[table], table).toHaveLength(2);
      for (const v of report[table]!) expect(v, `${table}: ${JSON.stringify(report[table])}`).toMatch(/^equal/);
    }
    // The comparison has rows to compare, and the unfaithful ones are really unfaithful (else they belong above).
    expect(report.publication!.some((v) => !v.startsWith('equal (0'))).toBe(true);
    for (const table of ['folds', 'totals']) expect(report[table]!.every((v) => !v.startsWith('equal')), `${table}: ${JSON.stringify(report[table])}`).toBe(true);
  });
});
