/**
 * The DuckDB engine (runRollup: the rules of sink/sql/rules on embedded DuckDB) over a bucket
 * directory, writing its outputs like `metering rollup` does, with its state database in --out.
 * Own process, so its time and peak RSS are measured like the CLI's.
 *
 * --loader json makes it "the twin SQL alone" of issue 11: the same engine and rules with the
 * TypeScript ledger parser replaced by DuckDB's JSON reader (duckdb-json-loader.ts), passed as the
 * engine's internal `loader` option. An engine without that option ignores it; the output says so
 * (`loader`), and the benchmark prints a warning instead of a mislabelled number.
 *
 * Prints one JSON line: { entries, intervals, hourly, loader, threads, memoryLimit }, the counts from
 * <out>/report.json (the one output file whose name and fields stay the same across engines).
 *
 *   node --import tsx bench/support/duckdb-twin.ts --bucket DIR --out DIR --now-ms N [--loader json|typescript] [--memory-limit 1GiB] [--threads N] [--grace-ms 300000] [--stale-after-ms 21600000]
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { runRollup, type EngineOptions } from 'metering-ledger/sink';
import { jsonLoaderCalls, loadWithDuckDbJson } from './duckdb-json-loader.js';
import { readReportCounts } from './report-counts.js';

const { values } = parseArgs({
  options: {
    bucket: { type: 'string' },
    out: { type: 'string' },
    'now-ms': { type: 'string' },
    loader: { type: 'string', default: 'typescript' },
    'grace-ms': { type: 'string', default: String(5 * 60_000) },
    'stale-after-ms': { type: 'string', default: String(6 * 3_600_000) },
    threads: { type: 'string' },
    'memory-limit': { type: 'string' },
  },
});
if (!values.bucket || !values.out || !values['now-ms']) throw new Error('--bucket, --out and --now-ms are required');
if (values.loader !== 'json' && values.loader !== 'typescript') throw new Error(`--loader must be json or typescript, got ${values.loader}`);
fs.mkdirSync(values.out, { recursive: true });

const options: EngineOptions = {
  source: values.bucket,
  out: values.out,
  now: Number(values['now-ms']),
  graceMs: Number(values['grace-ms']),
  staleAfterMs: Number(values['stale-after-ms']),
  ...(values.threads ? { threads: Number(values.threads) } : {}),
  ...(values['memory-limit'] ? { memoryLimit: values['memory-limit'] } : {}),
  ...(values.loader === 'json' ? { loader: loadWithDuckDbJson } : {}),
};
await runRollup(options);
const loader = values.loader === 'json' ? (jsonLoaderCalls() > 0 ? 'duckdb-json' : 'typescript (the engine ignored the loader option)') : 'typescript';
process.stdout.write(
  JSON.stringify({ ...readReportCounts(path.join(values.out, 'report.json')), loader, threads: values.threads ? Number(values.threads) : null, memoryLimit: values['memory-limit'] ?? null }) + '\n',
);
