import type { Command } from 'commander';
import { ttyProgress } from '../consumer/progress.js';
import { runRollup } from '../consumer/engine/duckdb-engine.js';
import { cliLogger } from '../shipper/cli-logger.js';
import { writeMetricsFile } from '../metrics.js';
import { validateMetricsFile } from './cli-error.js';
import { addConsumerFlags, consumerErrorExit, rollupOptionsFromFlags, validateConsumerFlags, type ConsumerFlags } from './consumer-flags.js';
import { runBigQueryRollup } from '../consumer/engine/bigquery-engine.js';
import { addEngineFlags, bigQueryErrorExit, bigQueryOptionsFromFlags, validateEngineFlags, type EngineFlags } from './engine-flags.js';

export function registerRollup(program: Command): void {
  const cmd = program
    .command('rollup')
    .description(
      'Read what the shippers uploaded and write de-duplicated usage intervals and watermarked hourly rollups to --out, ' +
        'partitioned by UTC day: hourly/dt=YYYY-MM-DD/, intervals/dt=YYYY-MM-DD/, revisions/run=N/ (append-only) and report.json. ' +
        'The rules run as SQL on embedded DuckDB, state in <out>/state.duckdb; incremental (only new objects are read, only what they change is recomputed, ' +
        'only changed partitions are rewritten) and idempotent; one run at a time per state. See docs/consumer.md.',
    );
  addEngineFlags(addConsumerFlags(cmd, true))
    .option('--metrics-file <file.prom>', 'write node-exporter textfile-collector metrics here (last success time, entries read, watermark lag, objects failed)')
    .action(async (flags: RollupFlags) => {
      process.exitCode = await runRollupCommand(flags);
    });
}

type RollupFlags = ConsumerFlags & EngineFlags & { out: string; metricsFile?: string };

async function runRollupCommand(flags: RollupFlags): Promise<number> {
  try {
    validateConsumerFlags(flags);
    validateEngineFlags(flags);
    if (flags.metricsFile !== undefined) validateMetricsFile(flags.metricsFile);
  } catch (err) {
    return consumerErrorExit('rollup', err);
  }
  const tty = process.stderr.isTTY ? ttyProgress() : undefined;
  try {
    const logger = cliLogger('metering-rollup');
    if (tty) logger.level = 'warn';
    const observe = { logger, ...(tty ? { onProgress: tty.onProgress } : {}) };
    const res = flags.engine === 'bigquery' ? await runBigQueryRollup({ ...bigQueryOptionsFromFlags(flags), ...observe }) : await runRollup({ ...(await rollupOptionsFromFlags(flags)), ...observe });
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
      'tables' in res
        ? `BigQuery: read partitions ${res.run.partitions_read.join(', ') || 'none'}; outputs in ${res.tables.hourly}, ${res.tables.intervals}, ${res.tables.revisions}; wrote ${flags.out}/report.json`
        : `wrote ${flags.out}/{hourly,intervals,revisions}/ (${flags.format}, changed partitions only) and report.json`,
    ];
    process.stdout.write(lines.join('\n') + '\n');
    return 0;
  } catch (err) {
    tty?.done();
    if (flags.metricsFile) await writeMetricsFile(flags.metricsFile, 'rollup', false, {}).catch(() => {});
    return bigQueryErrorExit('rollup', err) ?? consumerErrorExit('rollup', err);
  }
}
