import type { Command } from 'commander';
import { ttyProgress } from '../consumer/progress.js';
import { runRollup } from '../consumer/run-rollup.js';
import { cliLogger } from '../shipper/cli-logger.js';
import { addConsumerFlags, consumerErrorExit, rollupOptionsFromFlags, validateConsumerFlags, type ConsumerFlags } from './consumer-flags.js';

export function registerRollup(program: Command): void {
  const cmd = program
    .command('rollup')
    .description(
      'Read what the shippers uploaded and write de-duplicated usage intervals and watermarked hourly rollups: ' +
        'intervals.ndjson, hourly.ndjson, revisions.ndjson and report.json in --out. Incremental (only new objects are read) ' +
        'and idempotent; one run at a time per state file. See docs/consumer.md for the rules.',
    );
  addConsumerFlags(cmd, true).action(async (flags: ConsumerFlags & { out: string }) => {
    process.exitCode = await runRollupCommand(flags);
  });
}

async function runRollupCommand(flags: ConsumerFlags & { out: string }): Promise<number> {
  try {
    validateConsumerFlags(flags);
  } catch (err) {
    return consumerErrorExit('rollup', err);
  }
  const tty = process.stderr.isTTY ? ttyProgress() : undefined;
  try {
    const logger = cliLogger('metering-rollup');
    if (tty) logger.level = 'warn';
    const res = await runRollup({
      ...(await rollupOptionsFromFlags(flags)),
      logger,
      ...(tty ? { onProgress: tty.onProgress } : {}),
    });
    tty?.done();
    const r = res.report;
    const lines = [
      `read ${res.run.objects_read} new objects, ${res.run.entries_read} entries (total ${r.entries_read}, ${r.duplicates} duplicates)`,
      `watermark ${r.watermark}${r.watermark !== r.watermark_computed ? ` (evidence alone: ${r.watermark_computed})` : ''}`,
      `intervals ${r.intervals.total} (open ${r.intervals.open}, unconfirmed end ${r.intervals.unconfirmed_end}); hourly rows ${r.hourly_rows.total} (final ${r.hourly_rows.final})`,
      `revisions: ${res.run.new_revisions} new, ${r.revisions} total`,
      `orphan stops ${r.orphan_stops.count}, duplicate starts ${r.duplicate_starts.count}, duplicate stops ${r.duplicate_stops.count}, seq gaps ${r.seq_gaps.missing} in ${r.seq_gaps.writers} writers`,
      `invalid lines ${r.invalid_lines.count}, quarantined lines ${r.quarantined_lines}, bad objects ${r.objects.bad.length}, late entries ${r.late_entries.count}, too late ${r.too_late_entries.count}, clock skew ${r.clock_skew_entries.count}`,
      `stale nodes: ${r.nodes.filter((n) => n.stale).map((n) => n.node).join(', ') || 'none'}`,
      `wrote ${flags.out}/{intervals.ndjson,hourly.ndjson,revisions.ndjson,report.json}`,
    ];
    process.stdout.write(lines.join('\n') + '\n');
    return 0;
  } catch (err) {
    tty?.done();
    return consumerErrorExit('rollup', err);
  }
}
