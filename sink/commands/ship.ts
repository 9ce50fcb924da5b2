import { hostname } from 'node:os';
import { Command, Option } from 'commander';
import { resolveLedgerDir } from '../../src/index.js';
import { openDestination } from '../destinations/open.js';
import { OptionalPeerMissingError } from '../optional-peer.js';
import { requireDirectory, UsageError, validateMetricsFile } from './cli-error.js';
import { EXIT_ERROR, EXIT_USAGE } from './exit-codes.js';
import { formatByteSize, formatDuration, parseByteSize, parseDuration } from '../duration.js';
import { cliLogger } from '../shipper/cli-logger.js';
import { ShipperLockedError } from '../shipper/lock.js';
import { createShipperMetrics, startMetricsServer } from '../shipper/metrics-server.js';
import { writeMetricsFile } from '../metrics.js';
import { ProgressBar } from '../shipper/progress-bar.js';
import { SHIPPER_DEFAULTS } from '../shipper/options.js';
import { shipOnce, ShipOnceError, startShipper, type ShipperOptions } from '../shipper/shipper.js';
import type { ShipperStatus } from '../shipper/status.js';

import { EXIT_LOCKED, flagParser as wrap } from './flag-parser.js';
/** Milliseconds: a plain integer, or a duration with a unit (`2s`). */
const millis = wrap((s) => (/^\d+$/.test(s) ? Number(s) : parseDuration(s)));
const bytes = wrap(parseByteSize);
const duration = wrap(parseDuration);
const port = wrap((s) => {
  const n = Number(s);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new Error(`invalid port ${JSON.stringify(s)}: use 1-65535 (0 picks a free one)`);
  return n;
});

interface ShipFlags {
  ledgerDir?: string;
  dest: string;
  endpoint?: string;
  node: string;
  once?: boolean;
  gzip?: boolean;
  batchBytes: number;
  batchMs: number;
  rescanMs: number;
  progressMs: number;
  retention: number;
  maxLineBytes: number;
  stateDir?: string;
  metricsPort?: number;
  metricsHost: string;
  metricsFile?: string;
  progressBar: boolean;
  sealQuietMs: number;
  retryBaseMs: number;
  retryCapMs: number;
  permanentRetryMs: number;
  maxRetryTime: number;
}

const D = SHIPPER_DEFAULTS;
const kib = formatByteSize;
const dur = formatDuration;

export function registerShip(program: Command): void {
  program
    .command('ship')
    .description(
      'Tail a ledger directory and upload its complete lines to object storage, each line exactly once. ' +
        'Runs until SIGTERM/SIGINT (then finishes the upload in flight, saves its position and exits 0), or with --once drains and exits.',
    )
    .option('--ledger-dir <dir>', 'ledger directory written by the recorder (default: $METERING_DIR/metering or /var/lib/metering-ledger/metering)')
    .requiredOption('--dest <url>', 'destination: gs://bucket/prefix (Google Cloud Storage), file:///dir or a directory path')
    .option('--endpoint <url>', 'GCS only: API endpoint, e.g. a test server (STORAGE_EMULATOR_HOST is honoured too)')
    .addOption(new Option('--node <id>', 'node id used in object names and the progress object (letters, digits, ".", "_", "-")').default(hostname(), `the hostname, here "${hostname()}"`))
    .option('--once', 'drain everything present, write the node progress object and exit (cron, tests, demos); exit 1 naming what was not shipped if the destination fails for --max-retry-time')
    .option('--gzip', 'gzip objects (names end in .ndjson.gz)')
    .addOption(new Option('--batch-bytes <size>', 'an object covers at most this many ledger bytes (e.g. 8MiB)').default(D.batchBytes, kib(D.batchBytes)).argParser(bytes))
    .addOption(new Option('--batch-ms <ms>', 'after a change, wait this long to gather lines into one object').default(D.batchMs).argParser(millis))
    .addOption(new Option('--rescan-ms <ms>', 'rescan the directory this often as a safety net for missed file events').default(D.rescanMs).argParser(millis))
    .addOption(new Option('--progress-ms <ms>', 'rewrite <prefix>/nodes/<node>.json at least this often, even when idle').default(D.progressMs).argParser(millis))
    .addOption(new Option('--retention <duration>', 'delete sealed segments this long after their last write, once every byte is confirmed uploaded (e.g. 7d, 12h, 30m)').default(D.retentionMs, dur(D.retentionMs)).argParser(duration))
    .addOption(new Option('--max-line-bytes <size>', 'longer lines go to quarantine (head only)').default(D.maxLineBytes, kib(D.maxLineBytes)).argParser(bytes))
    .option('--state-dir <dir>', 'where positions.json and status.json live (default: <ledger-dir>/.shipper)')
    .addOption(new Option('--metrics-port <port>', 'serve Prometheus metrics on http://<metrics-host>:<port>/metrics (off by default)').argParser(port))
    .option('--metrics-host <host>', 'address the metrics endpoint listens on (0.0.0.0 or :: for a scraper on another machine)', '127.0.0.1')
    .option('--metrics-file <file.prom>', 'with --once: write node-exporter textfile-collector metrics here (last success time, entries read, lag, objects failed)')
    .option('--no-progress-bar', 'no progress bar on a terminal while draining a backlog')
    .addOption(new Option('--seal-quiet-ms <ms>', 'a rotated segment is finished only after this long without writes').default(D.sealQuietMs).argParser(millis))
    .addOption(new Option('--retry-base-ms <ms>', 'first backoff step after a destination error (exponential, full jitter)').default(D.retry.baseMs).argParser(millis))
    .addOption(new Option('--retry-cap-ms <ms>', 'longest backoff between retries').default(D.retry.capMs).argParser(millis))
    .addOption(new Option('--permanent-retry-ms <ms>', 'daemon: retry interval after an error retrying cannot fix (403, missing bucket)').default(D.retry.permanentMs).argParser(millis))
    .addOption(new Option('--max-retry-time <duration>', '--once: give up (exit 1, naming what was not shipped) once the destination has failed this long without a success; errors retrying cannot fix end it at once').default(D.maxRetryMs, dur(D.maxRetryMs)).argParser(duration))
    .addHelpText(
      'after',
      `
Objects: <prefix>/ledger/node=<node>/dt=<YYYY-MM-DD>/<segment>.<start>-<end>.ndjson[.gz] (valid lines),
         <prefix>/quarantine/... (malformed lines, with source and offset), <prefix>/nodes/<node>.json (progress).
Exit codes: 0 done/stopped cleanly, ${EXIT_ERROR} error, ${EXIT_USAGE} bad input (nothing was shipped), ${EXIT_LOCKED} another shipper runs on this ledger directory.
Logs: pino JSON lines on stderr; on a terminal one readable line each. Level from METERING_LOG_LEVEL.`,
    )
    .action(async (flags: ShipFlags) => {
      process.exitCode = await runShip(flags);
    });
}

/** Refuses paths of the wrong kind before the shipper touches anything (exit 2). */
function validateShipFlags(flags: ShipFlags, ledgerDir: string): void {
  const hint = 'the ledger directory is where the recorder writes ledger.jsonl (its `dir`, or <METERING_DIR>/metering)';
  requireDirectory('--ledger-dir', flags.ledgerDir ?? ledgerDir, ledgerDir, { mustExist: false, hint });
  if (flags.stateDir) requireDirectory('--state-dir', flags.stateDir, flags.stateDir, { mustExist: false, hint: '--state-dir is a directory for positions.json and status.json' });
  // A --dest that is a file is not refused here: it is a destination error like a 403, which
  // `--once` reports with what was not shipped (exit 1) and the daemon keeps retrying.
  if (flags.metricsFile !== undefined) {
    if (!flags.once) throw new UsageError('--metrics-file is for `ship --once` (cron); a running shipper serves its metrics with --metrics-port', 'add --once, or use --metrics-port');
    validateMetricsFile(flags.metricsFile);
  }
}

async function runShip(flags: ShipFlags): Promise<number> {
  const log = cliLogger('metering-shipper', { label: 'metering ship' });
  const ledgerDir = resolveLedgerDir(flags.ledgerDir ? { dir: flags.ledgerDir } : {});
  try {
    validateShipFlags(flags, ledgerDir);
  } catch (err) {
    const e = err as UsageError;
    log.error({ hint: e.hint, exit_code: EXIT_USAGE }, e.message);
    return EXIT_USAGE;
  }
  let dest: Awaited<ReturnType<typeof openDestination>>;
  try {
    // The shipper turns the client's own retries off itself (RetryingDestination): one policy.
    dest = await openDestination(flags.dest, flags.endpoint ? { endpoint: flags.endpoint } : {});
  } catch (err) {
    if (err instanceof OptionalPeerMissingError) {
      log.error({ dest: flags.dest, hint: err.hint, exit_code: EXIT_USAGE }, err.message);
      return EXIT_USAGE;
    }
    log.error({ dest: flags.dest, err: (err as Error).message, exit_code: EXIT_ERROR }, 'cannot open the destination');
    return EXIT_ERROR;
  }
  const bar = new ProgressBar();
  const metrics = flags.metricsPort !== undefined || flags.metricsFile !== undefined ? createShipperMetrics({ defaultMetrics: flags.metricsPort !== undefined }) : undefined;
  const options: ShipperOptions = {
    ledgerDir,
    destination: metrics ? metrics.instrument(dest.destination) : dest.destination,
    prefix: dest.prefix,
    node: flags.node,
    batchBytes: flags.batchBytes,
    batchMs: flags.batchMs,
    gzip: flags.gzip ?? false,
    rescanMs: flags.rescanMs,
    progressMs: flags.progressMs,
    retentionMs: flags.retention,
    maxLineBytes: flags.maxLineBytes,
    sealQuietMs: flags.sealQuietMs,
    retry: { baseMs: flags.retryBaseMs, capMs: flags.retryCapMs, permanentMs: flags.permanentRetryMs },
    maxRetryMs: flags.maxRetryTime,
    logger: log,
    ...(flags.stateDir ? { stateDir: flags.stateDir } : {}),
    ...(flags.progressBar && bar.enabled ? { onShipped: (e) => bar.update(e.shippedBytes, e.backlogAtStart) } : {}),
  };
  try {
    if (flags.once) {
      // SIGTERM keeps its default here (exit at once): positions are saved after every object.
      let status: ShipperStatus;
      try {
        ({ status } = await shipOnce(options));
      } catch (err) {
        if (flags.metricsFile && metrics) {
          await writeMetricsFile(flags.metricsFile, 'shipper', false, {
            objects_failed: { help: 'Object uploads that failed (and were retried) in the last run.', value: await metrics.failedCalls(['upload', 'put']) },
            failed_calls: { help: 'Destination calls of any kind that failed in the last run.', value: await metrics.failedCalls() },
          });
        }
        throw err;
      }
      bar.end();
      if (flags.metricsFile && metrics) {
        const oldest = status.oldest_unshipped_at ? Date.parse(status.oldest_unshipped_at) : undefined;
        const lag = oldest === undefined ? 0 : Math.max(0, (Date.now() - oldest) / 1000);
        await writeMetricsFile(flags.metricsFile, 'shipper', true, {
          entries_read: { help: 'Valid ledger entries read and shipped by the last run.', value: status.counters.ledger_lines },
          quarantined_lines: { help: 'Malformed lines shipped to quarantine by the last run.', value: status.counters.quarantined_lines },
          objects_uploaded: { help: 'Objects created by the last run.', value: status.counters.objects_uploaded },
          backlog_bytes: { help: 'Ledger bytes not yet shipped when the last run ended.', value: status.backlog_bytes },
          oldest_unshipped_age_seconds: { help: 'Age of the oldest unshipped entry when the last run ended (0 when drained).', value: lag },
          watermark_lag_seconds: { help: 'How far what is shipped trails what is written: the oldest unshipped entry\'s age (0 when drained).', value: lag },
          objects_failed: { help: 'Object uploads that failed (and were retried) in the last run.', value: await metrics.failedCalls(['upload', 'put']) },
          failed_calls: { help: 'Destination calls of any kind that failed (and were retried) in the last run.', value: await metrics.failedCalls() },
        });
      }
      log.info({ shippedLines: status.counters.ledger_lines, quarantined: status.counters.quarantined_lines, objects: status.counters.objects_uploaded, backlogBytes: status.backlog_bytes }, 'shipper: drained');
      return 0;
    }
    const running = await startShipper(options);
    metrics?.setStatus(running.status);
    const server = metrics && flags.metricsPort !== undefined ? await startMetricsServer(flags.metricsPort, metrics.registry, flags.metricsHost) : undefined;
    if (server) log.info({ url: server.url }, 'shipper: metrics endpoint listening');
    let signals = 0;
    const onSignal = (sig: NodeJS.Signals): void => {
      signals++;
      if (signals > 1) {
        log.warn({ signal: sig }, 'shipper: second signal, exiting now (positions are saved after every object, nothing is lost)');
        process.exit(130);
      }
      log.info({ signal: sig }, 'shipper: stopping after the upload in flight');
      void running.stop();
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
    try {
      await running.done;
    } finally {
      bar.end();
      await server?.close();
    }
    return 0;
  } catch (err) {
    if (err instanceof ShipperLockedError) {
      // `holderPid`, not `pid`: pino already puts this process's own pid on every line.
      log.error({ ledgerDir: err.ledgerDir, holderPid: err.holderPid, exit_code: EXIT_LOCKED }, err.message);
      return EXIT_LOCKED;
    }
    if (err instanceof ShipOnceError) {
      log.error({ err: err.message, notShipped: err.notShipped, exit_code: EXIT_ERROR }, 'shipper: --once did not ship everything');
      return EXIT_ERROR;
    }
    log.error({ err: (err as Error).message, exit_code: EXIT_ERROR }, 'shipper failed');
    return EXIT_ERROR;
  }
}
