/** Flags shared by `metering rollup` and `metering usage`, and how a consumer command reports failure. */
import { Option, type Command } from 'commander';
import { openDestination } from '../destinations/open.js';
import { DEFAULT_GRACE_MS, DEFAULT_MAX_SKEW_MS, DEFAULT_RETAIN_MS, DEFAULT_STALE_AFTER_MS, type RollupOptions } from '../consumer/run-rollup.js';
import { EXIT_LOCKED, flagParser } from './flag-parser.js';
import { formatDuration, parseDuration } from '../duration.js';
import { RollupLockedError } from '../consumer/state-lock.js';
import { StateFileError } from '../consumer/state-store.js';

/** Exit code for an unusable state file or bad arguments. */
export const EXIT_USAGE = 2;

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
}

const wrap = flagParser;

export const durationFlag = wrap(parseDuration);

/** An RFC 3339 time with a zone (e.g. 2026-11-24T10:00:00Z). */
export const timeFlag = wrap((s: string): Date => {
  if (!/^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2}))?$/.test(s)) throw new Error(`invalid time ${JSON.stringify(s)}: use ISO 8601 with a zone, e.g. 2026-11-24T10:00:00Z, or a date 2026-11-24 (UTC midnight)`);
  const d = new Date(s.length === 10 ? `${s}T00:00:00Z` : s);
  if (!Number.isFinite(d.getTime())) throw new Error(`invalid time ${JSON.stringify(s)}`);
  return d;
});

export function addConsumerFlags(cmd: Command, outRequired: boolean): Command {
  cmd
    .requiredOption('--source <url>', 'where the shippers upload: gs://bucket/prefix, file:///dir or a directory path')
    .option('--endpoint <url>', 'GCS only: API endpoint (a test server); STORAGE_EMULATOR_HOST is honoured too');
  if (outRequired) cmd.requiredOption('--out <dir>', 'directory for intervals.ndjson, hourly.ndjson, revisions.ndjson and report.json');
  else cmd.option('--out <dir>', 'also write intervals.ndjson, hourly.ndjson, revisions.ndjson and report.json here (and keep state)');
  return cmd
    .option('--state <file>', 'state file that makes runs incremental (default: <out>/state.json; without --out and --state nothing is kept)')
    .addOption(new Option('--grace <duration>', 'subtracted from the watermark: uploads still in flight').argParser(durationFlag).default(DEFAULT_GRACE_MS, formatDuration(DEFAULT_GRACE_MS)))
    .addOption(
      new Option('--stale-after <duration>', 'a node silent for longer stops holding the watermark; its open intervals end at the last evidence').argParser(durationFlag).default(DEFAULT_STALE_AFTER_MS, formatDuration(DEFAULT_STALE_AFTER_MS)),
    )
    .addOption(new Option('--retain <duration>', 'keep per-event timelines this long behind the watermark; older ones are folded (bounded memory)').argParser(durationFlag).default(DEFAULT_RETAIN_MS, formatDuration(DEFAULT_RETAIN_MS)))
    .addOption(
      new Option('--max-skew <duration>', "entries stamped further than this from their segment's creation come from a broken clock: reported, not billed").argParser(durationFlag).default(DEFAULT_MAX_SKEW_MS, formatDuration(DEFAULT_MAX_SKEW_MS)),
    )
    .option('--now <time>', "the consumer's clock, the one trusted clock for staleness and the watermark (default: the system clock)", timeFlag);
}

/** The runRollup options both consumer commands take from their shared flags. */
export async function rollupOptionsFromFlags(flags: ConsumerFlags): Promise<RollupOptions> {
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
  };
}

/** Prints a consumer error the operator can act on; returns the exit code. */
export function consumerErrorExit(err: unknown): number {
  if (err instanceof RollupLockedError) {
    process.stderr.write(`metering: ${err.message}\n`);
    return EXIT_LOCKED;
  }
  if (err instanceof StateFileError) {
    process.stderr.write(`metering: ${err.message}\n`);
    return EXIT_USAGE;
  }
  process.stderr.write(`metering: ${(err as Error).message ?? String(err)}\n`);
  return 1;
}
