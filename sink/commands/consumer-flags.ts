/** Flags shared by `metering rollup` and `metering usage`, and how a consumer command reports failure. */
import { Option, type Command } from 'commander';
import { openDestination } from '../destinations/open.js';
import { DEFAULT_GRACE_MS, DEFAULT_MAX_SKEW_MS, DEFAULT_RETAIN_MS, DEFAULT_STALE_AFTER_MS } from '../consumer/rollup-options.js';
import type { EngineOptions } from '../consumer/engine/duckdb-engine.js';
import { OUTPUT_FORMATS, type OutputFormat } from '../consumer/outputs/partitions.js';
import { flagParser } from './flag-parser.js';
import { EXIT_LOCKED, EXIT_USAGE } from './exit-codes.js';
import { errorExit, localPath, reportError, requireDirectory, requireWritableFile, UsageError } from './cli-error.js';
import { parseTime } from './time-flag.js';
import { formatByteSize, formatDuration, parseByteSize, parseDuration } from '../duration.js';
import { DEFAULT_CHUNK_BYTES } from '../consumer/backlog-chunks.js';
import { RollupLockedError } from '../consumer/state-lock.js';
import { StateFileError } from '../consumer/state-error.js';

export { EXIT_USAGE };

export interface ConsumerFlags {
  source: string;
  endpoint?: string;
  out?: string;
  state?: string;
  grace: number;
  staleAfter: number;
  retain: number;
  maxSkew: number;
  now?: Date;
  memoryLimit: number;
  chunkBytes: number;
  format: OutputFormat;
}

const wrap = flagParser;

export const durationFlag = wrap(parseDuration);

/** A size such as 1GiB or 512MiB (at least 64 MiB: DuckDB needs room for its buffers). */
export const memoryFlag = wrap((text: string): number => {
  const bytes = parseByteSize(text);
  if (bytes < 64 * 1024 * 1024) throw new Error(`--memory-limit ${text} is too small: at least 64MiB`);
  return bytes;
});

export const DEFAULT_MEMORY_LIMIT_BYTES = 1024 * 1024 * 1024;

/** A size, 0 allowed (no limit). */
export const chunkFlag = wrap(parseByteSize);
const OUTPUTS = 'hourly/dt=YYYY-MM-DD/, intervals/dt=YYYY-MM-DD/, revisions/run=N/ and report.json';

/** An RFC 3339 time with a zone (e.g. 2026-11-24T10:00:00Z) or a date (UTC midnight). */
export const timeFlag = wrap(parseTime);

export function addConsumerFlags(cmd: Command, outRequired: boolean): Command {
  cmd
    .requiredOption('--source <url>', 'where the shippers upload: gs://bucket/prefix, file:///dir or a directory path')
    .option('--endpoint <url>', 'GCS only: API endpoint (a test server); STORAGE_EMULATOR_HOST is honoured too');
  if (outRequired) cmd.requiredOption('--out <dir>', `directory for the outputs: ${OUTPUTS}`);
  else cmd.option('--out <dir>', `also write the outputs here (${OUTPUTS}) and keep state`);
  return cmd
    .option('--state <file>', 'state database that makes runs incremental (default: <out>/state.duckdb; without --out and --state nothing is kept)')
    .addOption(new Option('--format <format>', 'output file format').choices(OUTPUT_FORMATS as string[]).default('ndjson'))
    .addOption(
      new Option('--memory-limit <size>', "the engine's memory limit (DuckDB memory_limit); beyond it the run spills to <state>.tmp/ on disk").argParser(memoryFlag).default(DEFAULT_MEMORY_LIMIT_BYTES, '1GiB'),
    )
    .addOption(
      new Option('--chunk-bytes <size>', 'a backlog of new objects bigger than this is read by several runs of about this size, each committed; the watermark holds until the last (0: one run)')
        .argParser(chunkFlag)
        .default(DEFAULT_CHUNK_BYTES, formatByteSize(DEFAULT_CHUNK_BYTES)),
    )
    .addOption(new Option('--grace <duration>', 'subtracted from the watermark: uploads still in flight').argParser(durationFlag).default(DEFAULT_GRACE_MS, formatDuration(DEFAULT_GRACE_MS)))
    .addOption(
      new Option('--stale-after <duration>', 'a node silent for longer stops holding the watermark; its open intervals end at the last evidence').argParser(durationFlag).default(DEFAULT_STALE_AFTER_MS, formatDuration(DEFAULT_STALE_AFTER_MS)),
    )
    .addOption(new Option('--retain <duration>', 'a start or baseline arriving with emitted_at this far behind the last watermark is too late (not billed); stops are never too late').argParser(durationFlag).default(DEFAULT_RETAIN_MS, formatDuration(DEFAULT_RETAIN_MS)))
    .addOption(
      new Option('--max-skew <duration>', "entries stamped further than this from their segment's creation come from a broken clock: reported, not billed").argParser(durationFlag).default(DEFAULT_MAX_SKEW_MS, formatDuration(DEFAULT_MAX_SKEW_MS)),
    )
    .option('--now <time>', "the consumer's clock, the one trusted clock for staleness and the watermark (default: the system clock)", timeFlag);
}

/** The runRollup options both consumer commands take from their shared flags. */
export async function rollupOptionsFromFlags(flags: ConsumerFlags): Promise<EngineOptions> {
  return {
    source: flags.source,
    destination: await openDestination(flags.source, flags.endpoint ? { endpoint: flags.endpoint } : {}),
    ...(flags.out ? { out: flags.out } : {}),
    ...(flags.state ? { state: flags.state } : {}),
    graceMs: flags.grace,
    staleAfterMs: flags.staleAfter,
    retainMs: flags.retain,
    maxSkewMs: flags.maxSkew,
    ...(flags.now ? { now: flags.now } : {}),
    memoryLimit: `${flags.memoryLimit}B`,
    chunkBytes: flags.chunkBytes,
    format: flags.format,
  };
}

/**
 * Refuses bad consumer input before anything is read or written (exit 2): a --source that is a
 * file or does not exist, an --out or --state of the wrong kind, a --from not before --to.
 */
export function validateConsumerFlags(flags: ConsumerFlags & { from?: Date; to?: Date; html?: string }): void {
  const src = localPath(flags.source);
  if (src !== undefined) {
    requireDirectory('--source', flags.source, src, { mustExist: true, hint: 'point --source at the bucket directory the shippers upload to (it holds ledger/ and nodes/)' });
  }
  if (flags.out) requireDirectory('--out', flags.out, flags.out, { mustExist: false, hint: `--out is a directory for ${OUTPUTS}` });
  if (flags.state) requireWritableFile('--state', flags.state, { parentMayBeMissing: true });
  if (flags.html) requireWritableFile('--html', flags.html);
  if (flags.from && flags.to && flags.from.getTime() >= flags.to.getTime()) {
    throw new UsageError(`--from ${flags.from.toISOString()} is not before --to ${flags.to.toISOString()}`, 'the range is [--from, --to): --from must be earlier than --to');
  }
}

/** Prints a consumer error the operator can act on; returns the exit code. */
export function consumerErrorExit(command: string, err: unknown): number {
  if (err instanceof RollupLockedError) {
    reportError(command, err.message, { hint: 'wait for the other run to finish; runs on one state file take turns', exitCode: EXIT_LOCKED });
    return EXIT_LOCKED;
  }
  if (err instanceof StateFileError) {
    return errorExit(command, new UsageError(err.message, 'check --state (or --out): it must be the state file an earlier run of this --source wrote'));
  }
  return errorExit(command, err);
}
