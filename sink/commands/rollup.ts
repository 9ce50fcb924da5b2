import type { Command } from 'commander';
import { ttyProgress } from '../consumer/progress.js';
import { runRollup } from '../consumer/engine/duckdb-engine.js';
import { cliLogger } from '../shipper/cli-logger.js';
import { writeMetricsFile } from '../metrics.js';
import { validateMetricsFile } from './cli-error.js';
import { addConsumerFlags, consumerErrorExit, rollupOptionsFromFlags, validateConsumerFlags, type ConsumerFlags } from './consumer-flags.js';

export function registerRollup(program: Command): void {
  const cmd = program
    .command('rollup')
    .description(
      'Read what the shippers uploaded and write de-duplicated usage intervals and watermarked hourly rollups: ' +
        'intervals.ndjson, hourly.ndjson, revisions.ndjson and report.json in --out. Incremental (only new objects are read) ' +
        'and idempotent; one run at a time per state file. See docs/consumer.md for the rules.',
    );
  addConsumerFlags(cmd, true)
    .option('--metrics-file <file.prom>', 'write node-exporter textfile-collector metrics here (last success time, entries read, watermark lag, objects failed)')
    .action(async (flags: RollupFlags) => {
      process.exitCode = await runRollupCommand(flags);
    });
}

type RollupFlags = ConsumerFlags & { out: string; metricsFile?: string };

async function runRollupCommand(flags: RollupFlags): Promise<number> {
  try {
    validateConsumerFlags(flags);
    if (flags.metricsFile !== undefined) validateMetricsFile(flags.metricsFile);
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
    if (flags.metricsFile) {
      await writeMetricsFile(flags.metricsFile, 'rollup', true, {
        entries_read: { help: 'Entries read by the last run (new objects only).', value: res.run.entries_read },
        objects_read: { help: 'New objects read by the last run.', value: res.run.objects_read },
        objects_failed: { help: 'Objects that could not be read or parsed (reported in report.json, skipped).', value: r.objects.bad.length },
        watermark_lag_seconds: { help: "How far the watermark (hours before it are final) trails the consumer's clock.", value: (Date.parse(r.now) - Date.parse(r.watermark)) / 1000 },
        watermark_timestamp_seconds: { help: 'The watermark: hours before it are final.', value: Date.parse(r.watermark) / 1000 },
        new_revisions: { help: 'Revisions of final hours published by the last run.', value: res.run.new_revisions },
      });
    }
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
    if (flags.metricsFile) await writeMetricsFile(flags.metricsFile, 'rollup', false, {}).catch(() => {});
    return consumerErrorExit('rollup', err);
  }
}
