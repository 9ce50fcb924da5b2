/** `metering sql`: prints the billing rules rendered for one SQL dialect, to read or run by hand. */
import { Option, type Command } from 'commander';
import { DEFAULT_GRACE_MS, DEFAULT_MAX_SKEW_MS, DEFAULT_RETAIN_MS, DEFAULT_STALE_AFTER_MS } from '../consumer/rollup-options.js';
import { DIALECTS, type Dialect } from '../sql/render.js';
import { renderSqlScript } from '../sql/script.js';
import { reportError } from './cli-error.js';
import { durationFlag, timeFlag } from './consumer-flags.js';
import { EXIT_USAGE } from './exit-codes.js';
import { flagParser } from './flag-parser.js';

const runFlag = flagParser((s: string): number => {
  const n = Number(s);
  if (!/^\d+$/.test(s) || !Number.isSafeInteger(n) || n < 1) throw new Error(`invalid run number ${JSON.stringify(s)}: a positive integer`);
  return n;
});

interface SqlFlags {
  dialect: Dialect;
  dataset?: string;
  run: number;
  now?: Date;
  grace: number;
  staleAfter: number;
  retain: number;
  maxSkew: number;
}

export function registerSql(program: Command): void {
  program
    .command('sql')
    .description('Print the billing rules (contract v2) as one SQL script for DuckDB or BigQuery, rendered from sink/sql/rules (see docs/sql.md).')
    .addOption(new Option('--dialect <dialect>', 'SQL dialect').choices([...DIALECTS]).makeOptionMandatory())
    .option('--dataset <name>', 'BigQuery only: dataset (or project.dataset) holding the tables', 'metering')
    .addOption(new Option('--run <n>', 'the run number the script computes (entries of this run are its new arrivals)').argParser(runFlag).default(1))
    .option('--now <time>', "the consumer's clock for this run (default: the system clock)", timeFlag)
    .addOption(new Option('--grace <duration>', 'subtracted from the watermark').argParser(durationFlag).default(DEFAULT_GRACE_MS, '5m'))
    .addOption(new Option('--stale-after <duration>', 'a node silent for longer (by the destination clock) is stale').argParser(durationFlag).default(DEFAULT_STALE_AFTER_MS, '6h'))
    .addOption(new Option('--retain <duration>', 'a start or baseline arriving further than this behind the last watermark is too late').argParser(durationFlag).default(DEFAULT_RETAIN_MS, '7d'))
    .addOption(new Option('--max-skew <duration>', "entries further than this from their segment's creation are clock skew").argParser(durationFlag).default(DEFAULT_MAX_SKEW_MS, '30d'))
    .addHelpText('after', '\nExamples:\n  metering sql --dialect bigquery --dataset myproject.metering > rules.sql\n  metering sql --dialect duckdb --now 2026-11-24T10:00:00Z --run 3\n')
    .action((flags: SqlFlags) => {
      try {
        const script = renderSqlScript(
          flags.dialect,
          { now_ms: (flags.now ?? new Date()).getTime(), grace_ms: flags.grace, stale_after_ms: flags.staleAfter, retain_ms: flags.retain, max_skew_ms: flags.maxSkew, run: flags.run },
          { dataset: flags.dataset ?? 'metering' },
        );
        process.stdout.write(script);
      } catch (err) {
        reportError('sql', (err as Error).message, { hint: 'see `metering sql --help`', exitCode: EXIT_USAGE });
        process.exitCode = EXIT_USAGE;
      }
    });
}
