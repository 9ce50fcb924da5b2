/**
 * A BigQuery REST test server: the part of the v2 API `@google-cloud/bigquery` 8 uses for a query
 * job (datasets.get, jobs.insert, jobs.get, jobs.getQueryResults, jobs.cancel). It runs no SQL: it
 * records every query it receives, answers datasets it was told exist (404 for others), and returns
 * the rows a test scripted for queries matching a pattern (none otherwise). Jobs can be held RUNNING
 * forever (to prove the client's deadline) or fail. 127.0.0.1 only.
 *
 *   const bq = await startBigQueryServer({ datasets: ['proj.metering'] });
 *   bq.respond(/SELECT object FROM/, [{ object: 'fleet/ledger/…' }]);
 *   bq.holdJobs(/metering_fold/);            // those jobs never finish
 *   bq.queries                               // every query, in order of arrival
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';

export type CellValue = string | number | boolean | null;

interface Responder {
  pattern: RegExp;
  rows: Record<string, CellValue>[];
}

interface JobState {
  projectId: string;
  jobId: string;
  location: string;
  sql: string;
  held: boolean;
  error: string | undefined;
  cancelled: boolean;
  rows: Record<string, CellValue>[];
}

export interface ReceivedQuery {
  sql: string;
  jobId: string;
  location: string;
  jobTimeoutMs: string | undefined;
  authorization: string | undefined;
}

export interface BigQueryTestServer {
  url: string;
  /** Every query received by jobs.insert, in order. */
  queries: ReceivedQuery[];
  /** Every request line received (method and path). */
  requests: string[];
  /** Jobs cancelled through jobs.cancel. */
  cancelled: string[];
  /** Rows to answer for queries matching `pattern` (first match wins; later calls take precedence). */
  respond(pattern: RegExp, rows: Record<string, CellValue>[]): void;
  /** Jobs whose query matches stay RUNNING until cancelled. */
  holdJobs(pattern: RegExp): void;
  /** Jobs whose query matches end DONE with this error. */
  failJobs(pattern: RegExp, message: string): void;
  clearQueries(): void;
  stop(): Promise<void>;
}

function schemaOf(rows: Record<string, CellValue>[]): { fields: { name: string; type: string; mode: string }[] } {
  const names = rows.length ? Object.keys(rows[0]!) : [];
  return {
    fields: names.map((name) => {
      const v = rows.find((r) => r[name] !== null && r[name] !== undefined)?.[name];
      const type = typeof v === 'boolean' ? 'BOOLEAN' : typeof v === 'number' ? (Number.isInteger(v) ? 'INTEGER' : 'FLOAT') : 'STRING';
      return { name, type, mode: 'NULLABLE' };
    }),
  };
}

function encodeRows(rows: Record<string, CellValue>[]): { f: { v: string | null }[] }[] {
  const names = rows.length ? Object.keys(rows[0]!) : [];
  return rows.map((r) => ({ f: names.map((n) => ({ v: r[n] === null || r[n] === undefined ? null : String(r[n]) })) }));
}

export async function startBigQueryServer(options: { datasets?: string[]; location?: string } = {}): Promise<BigQueryTestServer> {
  const datasets = new Set(options.datasets ?? []);
  const location = options.location ?? 'EU';
  const responders: Responder[] = [];
  const held: RegExp[] = [];
  const failing: { pattern: RegExp; message: string }[] = [];
  const jobs = new Map<string, JobState>();
  const queries: ReceivedQuery[] = [];
  const requests: string[] = [];
  const cancelled: string[] = [];

  const jobResource = (j: JobState): object => ({
    kind: 'bigquery#job',
    id: `${j.projectId}:${j.location}.${j.jobId}`,
    jobReference: { projectId: j.projectId, jobId: j.jobId, location: j.location },
    configuration: { query: { query: j.sql } },
    status: j.held && !j.cancelled ? { state: 'RUNNING' } : { state: 'DONE', ...(j.error ? { errorResult: { reason: 'invalidQuery', message: j.error } } : j.cancelled ? { errorResult: { reason: 'stopped', message: 'Job execution was cancelled' } } : {}) },
    statistics: { totalBytesProcessed: '0' },
  });

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://127.0.0.1');
      const p = url.pathname.replace(/^\/bigquery\/v2/, '');
      requests.push(`${req.method} ${p}`);
      const send = (status: number, body: object): void => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      };
      const error = (status: number, message: string, reason: string): void => send(status, { error: { code: status, message, errors: [{ message, reason }], status: reason } });
      let m: RegExpExecArray | null;
      if (req.method === 'GET' && (m = /^\/projects\/([^/]+)\/datasets\/([^/]+)$/.exec(p))) {
        const name = `${decodeURIComponent(m[1]!)}.${decodeURIComponent(m[2]!)}`;
        if (!datasets.has(name)) return error(404, `Not found: Dataset ${name.replace('.', ':')}`, 'notFound');
        return send(200, { kind: 'bigquery#dataset', id: name.replace('.', ':'), datasetReference: { projectId: m[1], datasetId: m[2] }, location });
      }
      if (req.method === 'POST' && (m = /^\/projects\/([^/]+)\/jobs$/.exec(p))) {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as {
          jobReference?: { jobId?: string; location?: string };
          configuration?: { query?: { query?: string }; jobTimeoutMs?: string };
        };
        const sql = body.configuration?.query?.query ?? '';
        const jobId = body.jobReference?.jobId ?? `job-${jobs.size + 1}`;
        const job: JobState = {
          projectId: decodeURIComponent(m[1]!),
          jobId,
          location: body.jobReference?.location ?? location,
          sql,
          held: held.some((h) => h.test(sql)),
          error: failing.find((f) => f.pattern.test(sql))?.message,
          cancelled: false,
          rows: responders.find((r) => r.pattern.test(sql))?.rows ?? [],
        };
        jobs.set(jobId, job);
        queries.push({ sql, jobId, location: job.location, jobTimeoutMs: body.configuration?.jobTimeoutMs, authorization: req.headers.authorization });
        return send(200, jobResource(job));
      }
      if ((m = /^\/projects\/([^/]+)\/jobs\/([^/]+)(\/cancel)?$/.exec(p))) {
        const job = jobs.get(decodeURIComponent(m[2]!));
        if (!job) return error(404, `Not found: Job ${m[2]}`, 'notFound');
        if (m[3] && req.method === 'POST') {
          job.cancelled = true;
          cancelled.push(job.jobId);
          return send(200, { kind: 'bigquery#jobCancelResponse', job: jobResource(job) });
        }
        if (req.method === 'GET') return send(200, jobResource(job));
      }
      if (req.method === 'GET' && (m = /^\/projects\/([^/]+)\/queries\/([^/]+)$/.exec(p))) {
        const job = jobs.get(decodeURIComponent(m[2]!));
        if (!job) return error(404, `Not found: Job ${m[2]}`, 'notFound');
        if (job.held && !job.cancelled) return send(200, { kind: 'bigquery#getQueryResultsResponse', jobReference: { projectId: job.projectId, jobId: job.jobId, location: job.location }, jobComplete: false });
        if (job.error) return error(400, job.error, 'invalidQuery');
        return send(200, {
          kind: 'bigquery#getQueryResultsResponse',
          jobReference: { projectId: job.projectId, jobId: job.jobId, location: job.location },
          jobComplete: true,
          schema: schemaOf(job.rows),
          rows: encodeRows(job.rows),
          totalRows: String(job.rows.length),
        });
      }
      error(400, `test server: no handler for ${req.method} ${p}`, 'badRequest');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    queries,
    requests,
    cancelled,
    respond: (pattern, rows) => void responders.unshift({ pattern, rows }),
    holdJobs: (pattern) => void held.push(pattern),
    failJobs: (pattern, message) => void failing.push({ pattern, message }),
    clearQueries: () => {
      queries.length = 0;
      requests.length = 0;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
