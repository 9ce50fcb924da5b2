/**
 * The shipper's Prometheus metrics (prom-client): Node.js and process defaults, build info, the
 * shipper's own figures from its status, an upload-latency histogram and destination errors by
 * `reason`, measured by wrapping the destination. No `node` label: the scrape target (one shipper
 * per node) already says which node it is.
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { PermanentDestinationError, type Destination, type ObjectInfo, type PutOptions } from '../destinations/destination.js';
import { registerBuildInfo } from '../metrics.js';
import type { ShipperCounters, ShipperStatus } from './status.js';

const seconds = (iso: string | null | undefined): number | undefined => (iso ? Date.parse(iso) / 1000 : undefined);

/** Why a destination call failed, as a small fixed set of label values (alerts and dashboards group by it). */
export const ERROR_REASONS = ['permanent', 'throttled', 'server', 'timeout', 'network', 'client', 'disk', 'other'] as const;
export type ErrorReason = (typeof ERROR_REASONS)[number];

export function errorReason(err: unknown): ErrorReason {
  if (err instanceof PermanentDestinationError) return 'permanent';
  const e = (err ?? {}) as { status?: unknown; code?: unknown; message?: unknown };
  const status = typeof e.status === 'number' ? e.status : typeof e.code === 'number' ? e.code : undefined;
  const code = typeof e.code === 'string' ? e.code : '';
  const message = typeof e.message === 'string' ? e.message : '';
  if (status === 429) return 'throttled';
  if (status === 408 || code === 'ETIMEDOUT' || code === 'ESOCKETTIMEDOUT' || /timed? ?out/i.test(message)) return 'timeout';
  if (status !== undefined && status >= 500) return 'server';
  if (status !== undefined && status >= 400) return 'client';
  if (['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNABORTED'].includes(code) || /socket hang up/i.test(message)) return 'network';
  if (['ENOSPC', 'EIO', 'EACCES', 'EPERM', 'EROFS', 'EDQUOT', 'ENOENT'].includes(code)) return 'disk';
  return 'other';
}

export interface ShipperMetrics {
  registry: Registry;
  /** The destination with every call timed (uploads) and every failure counted by reason. */
  instrument(destination: Destination): Destination;
  /** Where the figures from the shipper's status come from (set once the shipper runs). */
  setStatus(status: () => ShipperStatus): void;
  /** Destination calls that failed so far, all of them or those of the given operations. */
  failedCalls(operations?: readonly string[]): Promise<number>;
}

const COUNTERS: Array<[keyof ShipperCounters, string, string]> = [
  ['objects_uploaded', 'metering_shipper_objects_uploaded_total', 'Objects created at the destination.'],
  ['bytes_uploaded', 'metering_shipper_bytes_uploaded_total', 'Object bytes uploaded (after compression).'],
  ['ledger_lines', 'metering_shipper_ledger_lines_total', 'Valid ledger lines shipped.'],
  ['quarantined_lines', 'metering_shipper_quarantined_lines_total', 'Malformed lines shipped to quarantine.'],
  ['generations_bumped', 'metering_shipper_generations_bumped_total', 'Segments found replaced or truncated and shipped again.'],
  ['segments_deleted', 'metering_shipper_segments_deleted_total', 'Fully shipped segments deleted by retention.'],
];

export function createShipperMetrics(options: { defaultMetrics?: boolean } = {}): ShipperMetrics {
  const registry = new Registry();
  if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry });
  registerBuildInfo(registry);
  let status: (() => ShipperStatus) | undefined;
  const fromStatus = <T>(pick: (s: ShipperStatus) => T): T | undefined => (status ? pick(status()) : undefined);

  const gauge = (name: string, help: string, value: () => number | undefined): void => {
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        const v = value();
        if (v === undefined) this.reset();
        else this.set(v);
      },
    });
  };
  gauge('metering_shipper_backlog_bytes', 'Ledger bytes not yet confirmed stored at the destination.', () => fromStatus((s) => s.backlog_bytes));
  gauge('metering_shipper_oldest_unshipped_age_seconds', 'Age of the oldest entry not yet shipped (0 when drained).', () =>
    fromStatus((s) => {
      const oldest = seconds(s.oldest_unshipped_at);
      return oldest === undefined ? 0 : Math.max(0, Date.now() / 1000 - oldest);
    }),
  );
  gauge('metering_shipper_last_success_timestamp_seconds', 'When the destination last confirmed a ledger object (unchanged while idle; 0: none yet since this process started).', () => fromStatus((s) => seconds(s.last_success_at)));
  gauge('metering_shipper_last_error_timestamp_seconds', 'When the last destination error happened (0: none since this process started).', () => fromStatus((s) => seconds(s.last_error?.at)));
  gauge('metering_shipper_start_timestamp_seconds', 'When this shipper process started shipping.', () => fromStatus((s) => seconds(s.started_at)));
  for (const [key, name, help] of COUNTERS) {
    // Counters kept by the shipper itself (they survive in status.json); exposed as they are.
    new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        const v = fromStatus((s) => s.counters[key]);
        this.reset();
        if (v !== undefined) this.inc(v);
      },
    });
  }

  const latency = new Histogram({
    name: 'metering_shipper_upload_duration_seconds',
    help: 'Time of one create-only object upload to the destination, by result (created, exists, error).',
    labelNames: ['result'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [registry],
  });
  const errors = new Counter({
    name: 'metering_shipper_upload_errors_total',
    help: 'Destination calls that failed (each is retried), by operation and reason.',
    labelNames: ['operation', 'reason'],
    registers: [registry],
  });
  // Present from the first scrape, so increase() sees the first error.
  for (const reason of ERROR_REASONS) errors.labels({ operation: 'upload', reason }).inc(0);

  const failed = (operation: string, err: unknown): never => {
    errors.labels({ operation, reason: errorReason(err) }).inc();
    throw err;
  };
  const counted = async <T>(operation: string, call: () => Promise<T>): Promise<T> => {
    try {
      return await call();
    } catch (err) {
      return failed(operation, err);
    }
  };

  return {
    registry,
    setStatus(s) {
      status = s;
    },
    async failedCalls(operations) {
      return (await errors.get()).values.filter((v) => !operations || operations.includes(String(v.labels.operation))).reduce((sum, v) => sum + v.value, 0);
    },
    instrument,
  };

  function instrument(d: Destination): Destination {
      const client = d.withoutClientRetries?.bind(d);
      return {
        // The retrying wrapper turns the client's own retries off: keep that reachable through us.
        ...(client ? { withoutClientRetries: () => instrument(client()) } : {}),
        get description() {
          return d.description;
        },
        async putIfAbsent(name: string, body: Buffer, o?: PutOptions) {
          const end = latency.startTimer();
          try {
            const result = await d.putIfAbsent(name, body, o);
            end({ result });
            return result;
          } catch (err) {
            end({ result: 'error' });
            return failed('upload', err);
          }
        },
        put: (name: string, body: Buffer, o?: PutOptions) => counted('put', () => d.put(name, body, o)),
        get: (name: string) => counted('get', () => d.get(name)),
        head: (name: string) => counted('head', () => d.head(name)),
        delete: (name: string) => counted('delete', () => d.delete(name)),
        async *list(prefix: string): AsyncIterable<ObjectInfo> {
          try {
            yield* d.list(prefix);
          } catch (err) {
            failed('list', err);
          }
        },
      };
  }
}

/** Serves GET /metrics on `host` (127.0.0.1 unless told otherwise: the figures are for a local agent). */
export async function startMetricsServer(port: number, registry: Registry, host = '127.0.0.1'): Promise<{ port: number; url: string; close: () => Promise<void> }> {
  const server = http.createServer((req, res) => {
    if (req.method === 'GET' && (req.url === '/metrics' || req.url === '/')) {
      registry.metrics().then(
        (text) => {
          res.writeHead(200, { 'content-type': registry.contentType });
          res.end(text);
        },
        (err: unknown) => {
          res.writeHead(500, { 'content-type': 'text/plain' });
          res.end(`metrics failed: ${(err as Error).message}\n`);
        },
      );
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found: try GET /metrics\n');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const bound = (server.address() as AddressInfo).port;
  const shown = host.includes(':') ? `[${host}]` : host;
  return {
    port: bound,
    url: `http://${shown}:${bound}/metrics`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
