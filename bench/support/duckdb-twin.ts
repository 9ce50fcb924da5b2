/**
 * The DuckDB twin of the rollup (runSqlRollup: the rules of sink/sql/rules on embedded DuckDB) over
 * a bucket directory, writing its outputs like `metering rollup` does (intervals, hourly rows,
 * revisions, report) with its state database in the same directory. Own process, so its time and
 * peak RSS are measured like the CLI's. Prints one JSON line: { intervals, hourly, watermarkMs, threads }.
 *
 *   node --conditions=source --import tsx bench/support/duckdb-twin.ts --bucket DIR --out DIR --now-ms N [--grace-ms 300000] [--stale-after-ms 21600000] [--threads N] [--memory-limit 1GB]
 */
import * as fs from 'node:fs';
import { parseArgs } from 'node:util';
import { runSqlRollup } from 'metering-ledger/sink';

const { values } = parseArgs({
  options: {
    bucket: { type: 'string' },
    out: { type: 'string' },
    'now-ms': { type: 'string' },
    'grace-ms': { type: 'string', default: String(5 * 60_000) },
    'stale-after-ms': { type: 'string', default: String(6 * 3_600_000) },
    threads: { type: 'string' },
    'memory-limit': { type: 'string' },
  },
});
if (!values.bucket || !values.out || !values['now-ms']) throw new Error('--bucket, --out and --now-ms are required');
fs.mkdirSync(values.out, { recursive: true });

const res = await runSqlRollup({
  source: values.bucket,
  out: values.out,
  now: Number(values['now-ms']),
  graceMs: Number(values['grace-ms']),
  staleAfterMs: Number(values['stale-after-ms']),
  ...(values.threads ? { threads: Number(values.threads) } : {}),
  ...(values['memory-limit'] ? { memoryLimit: values['memory-limit'] } : {}),
});
process.stdout.write(
  JSON.stringify({ intervals: res.intervals.length, hourly: res.hourly.length, watermarkMs: Date.parse(res.report.watermark), threads: values.threads ? Number(values.threads) : null }) + '\n',
);
