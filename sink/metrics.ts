/**
 * What every metering process exports to Prometheus, and the node-exporter textfile format for the
 * batch commands (`rollup`, `ship --once`) that run from cron and are gone before any scrape.
 */
import * as fs from 'node:fs';
import { Gauge, Registry } from 'prom-client';
import { writeFileAtomic } from './atomic-file.js';
import { PACKAGE_VERSION } from './version.js';

/** `metering_build_info{version, nodejs} 1`: which release runs where (join on it in queries). */
export function registerBuildInfo(registry: Registry): void {
  new Gauge({ name: 'metering_build_info', help: 'Always 1; the labels say which metering-ledger release and Node.js run.', labelNames: ['version', 'nodejs'], registers: [registry] })
    .labels({ version: PACKAGE_VERSION, nodejs: process.version })
    .set(1);
}

/** Gauges of one batch run, by name (without the `metering_<job>_` prefix) with their help text. */
export type BatchFigures = Record<string, { help: string; value: number | undefined }>;

/** The previous file's value of one series, so a failed run keeps the last success time it had. */
function previousValue(file: string, name: string): number | undefined {
  try {
    const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(fs.readFileSync(file, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Writes `file` (it must end in .prom, the only files node_exporter's textfile collector reads)
 * atomically, so the collector never sees half a file: `metering_<job>_last_run_timestamp_seconds`,
 * `_last_run_success`, `_last_success_timestamp_seconds` (kept from the previous file when this run
 * failed) and the run's figures.
 */
export async function writeMetricsFile(file: string, job: 'rollup' | 'shipper', success: boolean, figures: BatchFigures): Promise<void> {
  const registry = new Registry();
  registerBuildInfo(registry);
  const now = Date.now() / 1000;
  const lastSuccessName = `metering_${job}_last_success_timestamp_seconds`;
  const all: BatchFigures = {
    last_run_timestamp_seconds: { help: 'When the last run ended.', value: now },
    last_run_success: { help: '1 if the last run succeeded, 0 if it failed.', value: success ? 1 : 0 },
    last_success_timestamp_seconds: { help: 'When a run last succeeded.', value: success ? now : previousValue(file, lastSuccessName) },
    ...figures,
  };
  for (const [name, f] of Object.entries(all)) {
    if (f.value === undefined || !Number.isFinite(f.value)) continue;
    new Gauge({ name: `metering_${job}_${name}`, help: f.help, registers: [registry] }).set(f.value);
  }
  await writeFileAtomic(file, await registry.metrics(), { mode: 0o644 });
}
