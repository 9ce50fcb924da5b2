/**
 * The DuckDB twin of the rollup (sink/sql/duckdb/*.sql) over a bucket directory, as a user would run
 * it, writing its outputs like `metering rollup` does: intervals and hourly rows as ndjson files.
 * Own process, so its time and peak RSS are measured like the CLI's. Prints one JSON line:
 * { intervals, hourly, watermarkMs, threads }.
 *
 *   node --import tsx bench/support/duckdb-twin.ts --bucket DIR --out DIR --now-ms N [--grace-ms 300000] [--stale-after-ms 21600000] [--threads N]
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { DuckDBInstance } from '@duckdb/node-api';

const SQL_DIR = fileURLToPath(new URL('../../sink/sql/duckdb/', import.meta.url));
const quote = (s: string): string => `'${s.replaceAll("'", "''")}'`;

const { values } = parseArgs({
  options: {
    bucket: { type: 'string' },
    out: { type: 'string' },
    'now-ms': { type: 'string' },
    'grace-ms': { type: 'string', default: String(5 * 60_000) },
    'stale-after-ms': { type: 'string', default: String(6 * 3_600_000) },
    threads: { type: 'string' },
  },
});
if (!values.bucket || !values.out || !values['now-ms']) throw new Error('--bucket, --out and --now-ms are required');
fs.mkdirSync(values.out, { recursive: true });

const inst = await DuckDBInstance.create(':memory:', values.threads ? { threads: values.threads } : {});
const conn = await inst.connect();
try {
  const vars = { now_ms: values['now-ms'], grace_ms: values['grace-ms'], stale_after_ms: values['stale-after-ms'] };
  for (const [k, v] of Object.entries(vars)) await conn.run(`SET VARIABLE ${k} = ${Number(v)}::BIGINT`);
  await conn.run('SET VARIABLE previous_watermark_ms = NULL::BIGINT');
  for (const f of fs.readdirSync(SQL_DIR).filter((n) => n.endsWith('.sql')).sort()) {
    const sql = fs
      .readFileSync(path.join(SQL_DIR, f), 'utf8')
      .replaceAll('${LEDGER_GLOB}', path.join(values.bucket, 'ledger/*/*/*.ndjson*').replaceAll("'", "''"))
      .replaceAll('${NODES_GLOB}', path.join(values.bucket, 'nodes/*.json').replaceAll("'", "''"));
    await conn.run(sql);
  }
  await conn.run(`COPY (SELECT * FROM metering_intervals ORDER BY family, resource_id, start_ms) TO ${quote(path.join(values.out, 'intervals.ndjson'))} (FORMAT JSON)`);
  await conn.run(`COPY (SELECT * FROM metering_hourly ORDER BY hour_ms, family, resource_id) TO ${quote(path.join(values.out, 'hourly.ndjson'))} (FORMAT JSON)`);
  const one = async (q: string): Promise<number> => Number(((await conn.runAndReadAll(q)).getRowObjectsJson()[0] as Record<string, unknown>)['n']);
  const threads = ((await conn.runAndReadAll("SELECT current_setting('threads') AS t")).getRowObjectsJson()[0] as Record<string, unknown>)['t'];
  process.stdout.write(
    JSON.stringify({
      intervals: await one('SELECT count(*) AS n FROM metering_intervals'),
      hourly: await one('SELECT count(*) AS n FROM metering_hourly'),
      watermarkMs: await one('SELECT watermark_ms AS n FROM metering_watermark'),
      threads: Number(threads),
    }) + '\n',
  );
} finally {
  conn.closeSync();
  inst.closeSync();
}
