/**
 * `metering rollup --engine duckdb|bigquery` and the `--bq-*` flags: their definitions, their
 * validation (before anything is read or written: exit 2) and how a BigQuery setup error is shown.
 */
import { Option, type Command } from 'commander';
import { formatDuration } from '../duration.js';
import { BigQuerySetupError, DEFAULT_BQ_JOB_TIMEOUT_MS, parseGsSource, type BigQueryRollupOptions } from '../consumer/engine/bigquery-engine.js';
import { errorExit, UsageError } from './cli-error.js';
import { durationFlag, type ConsumerFlags } from './consumer-flags.js';

export const ENGINES = ['duckdb', 'bigquery'] as const;
export type Engine = (typeof ENGINES)[number];

export interface EngineFlags {
  engine: Engine;
  bqDataset?: string;
  bqLocation?: string;
  bqTimeout?: number;
  bqEndpoint?: string;
}

const BQ_FLAGS = [
  ['bqDataset', '--bq-dataset'],
  ['bqLocation', '--bq-location'],
  ['bqTimeout', '--bq-timeout'],
  ['bqEndpoint', '--bq-endpoint'],
] as const;

export function addEngineFlags(cmd: Command): Command {
  return cmd
    .addOption(new Option('--engine <engine>', 'where the rules run: embedded DuckDB, or BigQuery over the bucket (docs/bigquery.md)').choices([...ENGINES]).default('duckdb'))
    .option('--bq-dataset <project.dataset>', 'bigquery: the dataset holding state and outputs (required with --engine bigquery; it must exist)')
    .option('--bq-location <location>', "bigquery: location of the jobs, e.g. EU (default: the dataset's; must match it)")
    .addOption(new Option('--bq-timeout <duration>', `bigquery: longest a single job may run before it is cancelled (default: ${formatDuration(DEFAULT_BQ_JOB_TIMEOUT_MS)})`).argParser(durationFlag))
    .option('--bq-endpoint <url>', 'bigquery: API endpoint (a test server, called without credentials); BIGQUERY_EMULATOR_HOST is honoured too');
}

/** Refuses engine flags that do not fit together (exit 2 at the CLI). */
export function validateEngineFlags(flags: ConsumerFlags & EngineFlags): void {
  if (flags.engine !== 'bigquery') {
    const given = BQ_FLAGS.filter(([key]) => flags[key] !== undefined).map(([, flag]) => flag);
    if (given.length > 0) throw new UsageError(`${given.join(', ')} ${given.length === 1 ? 'is' : 'are'} only valid with --engine bigquery`, 'add --engine bigquery, or drop the --bq-* flags');
    return;
  }
  if (!flags.bqDataset) throw new UsageError('--engine bigquery needs --bq-dataset PROJECT.DATASET', 'e.g. --bq-dataset my-project.metering (create the dataset first: docs/bigquery.md)');
  if (!/^[A-Za-z0-9_-]+\.[A-Za-z0-9_]+$/.test(flags.bqDataset)) throw new UsageError(`--bq-dataset must be PROJECT.DATASET, got ${JSON.stringify(flags.bqDataset)}`, 'e.g. --bq-dataset my-project.metering');
  if (flags.bqLocation !== undefined && !/^[A-Za-z0-9-]+$/.test(flags.bqLocation)) throw new UsageError(`--bq-location ${JSON.stringify(flags.bqLocation)} is not a BigQuery location`, 'e.g. --bq-location EU or --bq-location europe-west1');
  if (flags.bqTimeout !== undefined && flags.bqTimeout < 1) throw new UsageError('--bq-timeout must be longer than 0', 'e.g. --bq-timeout 30m');
  if (flags.state) throw new UsageError('--state does not apply to --engine bigquery: its state lives in the dataset', 'drop --state (--out receives report.json)');
  try {
    parseGsSource(flags.source);
  } catch (err) {
    const e = err as BigQuerySetupError;
    throw new UsageError(e.message, e.hint);
  }
}

/** The BigQuery runner's options from the flags (after validateEngineFlags). */
export function bigQueryOptionsFromFlags(flags: ConsumerFlags & EngineFlags): BigQueryRollupOptions {
  return {
    source: flags.source,
    dataset: flags.bqDataset!,
    ...(flags.bqLocation ? { location: flags.bqLocation } : {}),
    ...(flags.bqTimeout !== undefined ? { jobTimeoutMs: flags.bqTimeout } : {}),
    ...(flags.bqEndpoint ? { client: { apiEndpoint: flags.bqEndpoint } } : {}),
    ...(flags.endpoint ? { gcsEndpoint: flags.endpoint } : {}),
    ...(flags.out ? { out: flags.out } : {}),
    graceMs: flags.grace,
    staleAfterMs: flags.staleAfter,
    retainMs: flags.retain,
    maxSkewMs: flags.maxSkew,
    ...(flags.now ? { now: flags.now } : {}),
  };
}

/** A BigQuery setup error (credentials, dataset, source) is bad input: exit 2 with its hint; else null. */
export function bigQueryErrorExit(command: string, err: unknown): number | null {
  if (err instanceof BigQuerySetupError) return errorExit(command, new UsageError(err.message, err.hint));
  return null;
}
