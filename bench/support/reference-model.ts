/**
 * The reference TypeScript model of the consumer (today's runRollup: every row in the JS heap),
 * over a bucket directory, in its own process so its time and peak RSS are measured like the CLI's.
 * Issue 11 moves it out of the CLI into test/reference/ as the oracle of the property suite; change
 * REFERENCE_MODULE then (or pass --module).
 *
 * Prints one JSON line: { entries, intervals, hourly } from <out>/report.json.
 *
 *   node --import tsx bench/support/reference-model.ts --bucket DIR --out DIR --now-ms N [--module SPECIFIER]
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import type { RollupOptions } from 'metering-ledger/sink';
import { REPO } from './child.js';
import { readReportCounts } from './report-counts.js';

/** Where runRollup lives: a package specifier, or a path relative to the repository. */
const REFERENCE_MODULE = './test/reference/run-rollup.ts';

const { values } = parseArgs({
  options: {
    bucket: { type: 'string' },
    out: { type: 'string' },
    'now-ms': { type: 'string' },
    module: { type: 'string', default: REFERENCE_MODULE },
  },
});
if (!values.bucket || !values.out || !values['now-ms']) throw new Error('--bucket, --out and --now-ms are required');
const specifier = values.module.startsWith('.') ? pathToFileURL(path.join(REPO, values.module)).href : values.module;
const mod = (await import(specifier)) as { runRollup?: (o: RollupOptions) => Promise<unknown> };
if (typeof mod.runRollup !== 'function') throw new Error(`${values.module} exports no runRollup: set REFERENCE_MODULE in bench/support/reference-model.ts (or --module) to the reference model's module`);
fs.mkdirSync(values.out, { recursive: true });
await mod.runRollup({ source: values.bucket, out: values.out, now: Number(values['now-ms']) });
process.stdout.write(JSON.stringify(readReportCounts(path.join(values.out, 'report.json'))) + '\n');
