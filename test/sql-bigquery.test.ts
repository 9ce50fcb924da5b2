/**
 * The BigQuery rendering of the billing rules cannot be run here (no BigQuery on this machine);
 * what is checked is that every statement of it, the metering_fold UDF included, parses with a
 * BigQuery-dialect parser (sqlglot, Debian's python3-sqlglot, run with /usr/bin/python3), and that
 * the same parser rejects broken SQL and DuckDB-only syntax, so the check can fail.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseBigQuery as parse, sqlglotAvailable as available } from './support/sqlglot.js';
import { bigQueryFoldFunction, renderExternalTables, renderRules, renderSqlScript, renderTemplate, stageStatements, type RuleParams } from 'metering-ledger/sink';

const PARAMS: RuleParams[] = [
  { now_ms: Date.UTC(2026, 10, 24, 10), grace_ms: 300_000, stale_after_ms: 21_600_000, retain_ms: 604_800_000, max_skew_ms: 2_592_000_000, run: 1 },
  { now_ms: Date.UTC(2027, 0, 1), grace_ms: 0, stale_after_ms: 0, retain_ms: 0, max_skew_ms: 0, run: 42 },
];

describe('BigQuery rendering of the rules', () => {
  it.runIf(available)('every statement (and the metering_fold UDF) parses with sqlglot\'s bigquery dialect', () => {
    for (const params of PARAMS) {
      const statements = [bigQueryFoldFunction().replace(/;\s*$/, ''), ...renderRules('bigquery', params, { dataset: 'my-project.billing' }).map((s) => s.sql)];
      expect(statements.length).toBeGreaterThan(20);
      const results = parse(statements);
      const failed = results.map((r, i) => ({ ...r, sql: statements[i]!.slice(0, 200) })).filter((r) => !r.ok);
      expect(failed).toEqual([]);
    }
  });

  it.runIf(available)('the parser rejects broken SQL and DuckDB-only syntax (the check can fail)', () => {
    const duckOnly = renderTemplate('duckdb', 'SELECT @struct(a AS x, b AS y) AS s, @idiv(a, 3600000) AS h FROM {{kept}}', PARAMS[0]!);
    const broken = [
      'SELECT FROM WHERE (',
      'CREATE OR REPLACE TABLE `metering.x` AS SELECT a FROM',
      'SELEC 1',
      duckOnly,
      // A real rendered statement with one slip.
      renderRules('bigquery', PARAMS[0]!).find((x) => x.file === '70_hourly.sql' && x.sql.includes('FULL OUTER JOIN'))!.sql.replace('FULL OUTER JOIN', 'FULL OUTER JOIN JOIN'),
    ];
    expect(parse(broken).map((r) => r.ok)).toEqual(broken.map(() => false));
  });

  it.runIf(available)('the BigQuery engine\'s staging statements parse, whatever the object names hold', () => {
    const hostile = "fleet/ledger/node=n'1/dt=2026-11-20/ledger-20261120T080000000Z-aaaaaaaa.0000000000000000-0000000000000100.ndjson\\x";
    const objects = [
      { name: hostile, uri: `gs://b/${hostile}`, dt: '2026-11-20', node: "n'1", segCreatedMs: Date.UTC(2026, 10, 20, 8), gzip: false },
      { name: 'fleet/ledger/node=n2/dt=2026-11-21/x.ndjson.gz', uri: 'gs://b/fleet/ledger/node=n2/dt=2026-11-21/x.ndjson.gz', dt: '2026-11-21', node: 'n2', segCreatedMs: undefined, gzip: true },
    ];
    const statements = [...stageStatements({ dataset: 'my-project.billing', run: 3, objects }), ...stageStatements({ dataset: 'my-project.billing', run: 4, objects: [] })];
    expect(statements.join('\n')).toContain("WHERE dt IN (DATE '2026-11-20')");
    expect(parse(statements).filter((r) => !r.ok)).toEqual([]);
    expect(() => stageStatements({ dataset: 'p.d', run: 1, objects: [{ ...objects[0]!, dt: "2026-11-20') OR TRUE --" }] })).toThrow(/partition day/);
    // The external tables: only the bucket and prefix change, and names that cannot be quoted safely are refused.
    expect(renderExternalTables({ bucket: 'ledgers', prefix: 'fleet/eu', dataset: 'p.d' }).join('\n')).toContain("'gs://ledgers/fleet/eu/ledger/*.ndjson.gz'");
    expect(() => renderExternalTables({ bucket: 'ledgers', prefix: "x'y", dataset: 'p.d' })).toThrow(/prefix/);
  });

  it('the rendered script carries the UDF body from timeline-fold.ts and only integer parameters', () => {
    const script = renderSqlScript('bigquery', PARAMS[0]!);
    expect(script).toContain('CREATE TEMP FUNCTION metering_fold(');
    expect(script).toContain('function foldTimeline(');
    expect(script).toContain('handoff_stop');
    expect(script).not.toMatch(/\{\{|@(struct|idiv|range|unnest)\(/);
    expect(() => renderRules('bigquery', { ...PARAMS[0]!, now_ms: 1.5 })).toThrow(/safe integer/);
    expect(() => renderRules('bigquery', { ...PARAMS[0]!, grace_ms: -1 })).toThrow(/non-negative/);
    expect(() => renderRules('bigquery', PARAMS[0]!, { dataset: 'x`; DROP' })).toThrow(/dataset/);
    // DuckDB and BigQuery come from the same files, statement for statement.
    expect(renderRules('duckdb', PARAMS[0]!).map((s) => s.file)).toEqual(renderRules('bigquery', PARAMS[0]!).map((s) => s.file));
  });
});

/**
 * Functions of BigQuery's GoogleSQL (https://cloud.google.com/bigquery/docs/reference/standard-sql/functions-and-operators)
 * that the rules call. A parser accepts any name as a function and the DuckDB transpile check runs
 * it on DuckDB, so a DuckDB-only function (BOOL_OR, LIST, ...) would pass both and fail only on
 * BigQuery: a new function must be looked up there and added here.
 */
const BIGQUERY_FUNCTIONS = new Set([
  'ABS', 'ARRAY_AGG', 'CAST', 'COALESCE', 'COUNT', 'DIV', 'FIRST_VALUE', 'GENERATE_ARRAY', 'GREATEST', 'LAG', 'LEAST',
  'LENGTH', 'MAX', 'MIN', 'ROW_NUMBER', 'STRUCT', 'SUBSTR', 'SUM', 'UNNEST',
]);
/** Words a `(` follows in SQL that are not function calls (TABLE: `CREATE TABLE name (columns)`, the quoted name gone). */
const NOT_CALLS = new Set(['AND', 'AS', 'FROM', 'IN', 'JOIN', 'NOT', 'ON', 'OR', 'OVER', 'SELECT', 'USING', 'VALUES', 'WHERE', 'EXISTS', 'INTO', 'WITH', 'TABLE', 'WHEN', 'THEN', 'ELSE']);

/** Every function a statement calls (names before `(`, outside comments, strings and quoted names). */
function calledFunctions(sql: string): string[] {
  const bare = sql.replace(/--[^\n]*/g, '').replace(/'[^']*'/g, "''").replace(/`[^`]*`/g, ' ');
  return [...bare.matchAll(/\b([A-Za-z_][A-Za-z0-9_]*)\s*\(/g)].map((m) => m[1]!.toUpperCase()).filter((f) => !NOT_CALLS.has(f));
}

describe('functions the BigQuery rendering calls', () => {
  it('are BigQuery functions (or the metering_fold UDF), whatever DuckDB accepts', () => {
    for (const params of PARAMS) {
      const unknown = new Set<string>();
      for (const s of renderRules('bigquery', params)) for (const f of calledFunctions(s.sql)) if (!BIGQUERY_FUNCTIONS.has(f) && f !== 'METERING_FOLD') unknown.add(`${f} (${s.file})`);
      expect([...unknown]).toEqual([]);
    }
    // The check can fail: DuckDB-only aggregates and list functions are caught.
    expect(calledFunctions('SELECT BOOL_OR(x), list_value(1) FROM t -- COMMENT_FN(1)')).toEqual(['BOOL_OR', 'LIST_VALUE']);
  });
});

describe('metering sql', () => {
  const bin = fileURLToPath(new URL('../bin/metering.js', import.meta.url));
  const run = (args: string[]) => spawnSync(process.execPath, [bin, 'sql', ...args], { encoding: 'utf8', timeout: 60_000 });

  it('prints the rules for a dialect with the run parameters as literals; bad input exits 2 and prints nothing', () => {
    const bq = run(['--dialect', 'bigquery', '--dataset', 'proj.billing', '--now', '2026-11-24T10:00:00Z', '--grace', '0s', '--run', '3']);
    expect(bq.status, bq.stderr).toBe(0);
    expect(bq.stdout).toContain('CREATE TEMP FUNCTION metering_fold(');
    expect(bq.stdout).toContain('`proj.billing.entries`');
    expect(bq.stdout).toContain(String(Date.UTC(2026, 10, 24, 10)));
    const duck = run(['--dialect', 'duckdb', '--now', '2026-11-24T10:00:00Z']);
    expect(duck.status, duck.stderr).toBe(0);
    expect(duck.stdout).toContain('CREATE TABLE IF NOT EXISTS metering_entries');
    expect(duck.stdout).not.toContain('CREATE TEMP FUNCTION');
    for (const bad of [['--dialect', 'oracle'], ['--dialect', 'bigquery', '--dataset', 'a;b'], ['--dialect', 'duckdb', '--run', '0'], ['--dialect', 'duckdb', '--grace', 'soon']]) {
      const r = run(bad);
      expect(r.status, bad.join(' ')).toBe(2);
      expect(r.stdout, bad.join(' ')).toBe('');
    }
  });
});
