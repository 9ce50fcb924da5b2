import type { Command } from 'commander';
import { Option } from 'commander';
import { ttyProgress } from '../consumer/progress.js';
import { runRollup } from '../consumer/engine/duckdb-engine.js';
import { writeFileAtomic } from '../atomic-file.js';
import { renderUsageHtml } from '../consumer/usage-html.js';
import { computeUsage, formatUsageTable, USAGE_GROUPS, type UsageGroupBy } from '../consumer/usage.js';
import { cliLogger } from '../shipper/cli-logger.js';
import { addConsumerFlags, consumerErrorExit, rollupOptionsFromFlags, timeFlag, validateConsumerFlags, type ConsumerFlags } from './consumer-flags.js';

interface UsageFlags extends ConsumerFlags {
  from?: Date;
  to?: Date;
  by: UsageGroupBy;
  html?: string;
  json?: boolean;
}

export function registerUsage(program: Command): void {
  const cmd = program
    .command('usage')
    .description(
      'Print usage as a table: vCPU-hours and memory GiB-hours (vm.compute), storage GiB-hours (vm.storage, snap.storage), ' +
        'computed exactly from integer milliseconds. Runs the same rollup as `metering rollup` (incrementally with --state/--out).',
    )
    .option('--from <time>', 'first hour to include (ISO time, floored to the hour)', timeFlag)
    .option('--to <time>', 'include hours starting before this time (ISO time)', timeFlag)
    .addOption(new Option('--by <group>', 'group rows by').choices(USAGE_GROUPS as string[]).default('resource'))
    .option('--html <file>', 'also write a self-contained HTML report with an hourly chart')
    .option('--json', 'print the table as JSON (exact integer sums as strings) instead of text');
  addConsumerFlags(cmd, false).action(async (flags: UsageFlags) => {
    process.exitCode = await runUsageCommand(flags);
  });
}

async function runUsageCommand(flags: UsageFlags): Promise<number> {
  try {
    validateConsumerFlags(flags);
  } catch (err) {
    return consumerErrorExit('usage', err);
  }
  const tty = process.stderr.isTTY ? ttyProgress() : undefined;
  try {
    const logger = cliLogger('metering-usage');
    logger.level = tty ? 'warn' : logger.level;
    const res = await runRollup({
      ...(await rollupOptionsFromFlags(flags)),
      logger,
      collectRows: true,
      ...(tty ? { onProgress: tty.onProgress } : {}),
    });
    tty?.done();
    const hourly = res.rows?.hourly ?? [];
    const table = computeUsage(hourly, { by: flags.by, from: flags.from ?? null, to: flags.to ?? null });
    if (flags.json) {
      process.stdout.write(JSON.stringify(table, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), 2) + '\n');
    } else {
      process.stdout.write(formatUsageTable(table, res.report.watermark));
    }
    if (flags.html) {
      await writeFileAtomic(flags.html, renderUsageHtml(table, { source: flags.source, watermark: res.report.watermark, generatedAt: res.report.now, rows: hourly }), { mode: 0o644 });
      process.stderr.write(`wrote ${flags.html}\n`);
    }
    return 0;
  } catch (err) {
    tty?.done();
    return consumerErrorExit('usage', err);
  }
}
