import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ShipperStatus } from './status.js';

const seconds = (iso: string | null): number | undefined => (iso ? Date.parse(iso) / 1000 : undefined);

/** The shipper's figures in the Prometheus text exposition format. */
export function renderMetrics(s: ShipperStatus): string {
  const lines: string[] = [];
  const labels = `node="${s.node}"`;
  const gauge = (name: string, help: string, value: number | undefined): void => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`);
    if (value !== undefined) lines.push(`${name}{${labels}} ${value}`);
  };
  const counter = (name: string, help: string, value: number): void => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} counter`, `${name}{${labels}} ${value}`);
  };
  const now = Date.now() / 1000;
  const oldest = seconds(s.oldest_unshipped_at);
  gauge('metering_shipper_backlog_bytes', 'Ledger bytes not yet confirmed stored at the destination.', s.backlog_bytes);
  gauge('metering_shipper_oldest_unshipped_age_seconds', 'Age of the oldest entry not yet shipped (0 when drained).', oldest === undefined ? 0 : Math.max(0, now - oldest));
  gauge('metering_shipper_last_success_timestamp_seconds', 'When the destination last confirmed an object.', seconds(s.last_success_at));
  gauge('metering_shipper_last_error_timestamp_seconds', 'When the last destination error happened.', seconds(s.last_error?.at ?? null));
  counter('metering_shipper_objects_uploaded_total', 'Objects created at the destination.', s.counters.objects_uploaded);
  counter('metering_shipper_bytes_uploaded_total', 'Object bytes uploaded (after compression).', s.counters.bytes_uploaded);
  counter('metering_shipper_ledger_lines_total', 'Valid ledger lines shipped.', s.counters.ledger_lines);
  counter('metering_shipper_quarantined_lines_total', 'Malformed lines shipped to quarantine.', s.counters.quarantined_lines);
  counter('metering_shipper_upload_errors_total', 'Destination calls that failed and were retried.', s.counters.upload_errors);
  counter('metering_shipper_generations_bumped_total', 'Segments found replaced or truncated and shipped again.', s.counters.generations_bumped);
  counter('metering_shipper_segments_deleted_total', 'Fully shipped segments deleted by retention.', s.counters.segments_deleted);
  return lines.join('\n') + '\n';
}

/** Serves GET /metrics on 127.0.0.1 only: the figures are for a local agent, not the network. */
export async function startMetricsServer(port: number, status: () => ShipperStatus): Promise<{ port: number; close: () => Promise<void> }> {
  const server = http.createServer((req, res) => {
    if (req.method === 'GET' && (req.url === '/metrics' || req.url === '/')) {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
      res.end(renderMetrics(status()));
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found: try GET /metrics\n');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
