/**
 * The BigQuery engine's one door to BigQuery: the client (through `@google-cloud/bigquery`, loaded
 * lazily), a credentials check that fails fast, the dataset check, and query jobs that can never
 * hang: every job carries a server-side timeout, is polled against a client-side deadline, and is
 * cancelled when that passes. Setup problems (no credentials, a bad key file, a missing dataset, no
 * permission) are BigQuerySetupError, which the CLI turns into exit 2 with the hint.
 */
import { setTimeout as delay } from 'node:timers/promises';
import type { BigQuery, BigQueryOptions, Job } from '@google-cloud/bigquery';
import type { Logger } from '../../../src/index.js';
import { loadBigQuery } from './bigquery-module.js';
import { isGoogleHost } from '../../google-host.js';

/** Where and as whom to call BigQuery. Tests point `apiEndpoint` at a local server. */
export interface BigQueryClientOptions {
  /**
   * API endpoint, e.g. a test server `http://127.0.0.1:9050`. Default: BigQuery's (or
   * BIGQUERY_EMULATOR_HOST). A host that is not Google's is called without credentials.
   */
  apiEndpoint?: string;
  /** Project that runs (and pays for) the jobs. Default: the dataset's project. */
  projectId?: string;
  /** A service account key file. Default: application default credentials. */
  keyFilename?: string;
  /** A service account key's fields, instead of a file. */
  credentials?: { client_email: string; private_key: string };
}

/** Bad setup, found before anything was written: exit 2 at the CLI, with `hint`. */
export class BigQuerySetupError extends Error {
  constructor(
    message: string,
    readonly hint: string,
  ) {
    super(message);
    this.name = 'BigQuerySetupError';
  }
}

/** A job that did not finish within its timeout (it was cancelled). */
export class BigQueryTimeoutError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BigQueryTimeoutError';
  }
}

const CREDENTIALS_HINT =
  'run `gcloud auth application-default login`, or set GOOGLE_APPLICATION_CREDENTIALS to a service account key file (the account needs roles/bigquery.jobUser on the project, roles/bigquery.dataEditor on the dataset and roles/storage.objectViewer on the bucket)';

function checkEndpoint(endpoint: string, what: string): string {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw new BigQuerySetupError(`${what} ${JSON.stringify(endpoint)} is not a URL`, 'write it with its scheme, e.g. http://127.0.0.1:9050');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new BigQuerySetupError(`${what} must be an http:// or https:// URL`, 'e.g. http://127.0.0.1:9050');
  if (url.username || url.password) throw new BigQuerySetupError(`${what} must not carry credentials in the URL`, 'pass credentials with GOOGLE_APPLICATION_CREDENTIALS');
  return endpoint.replace(/\/+$/, '');
}

/** An auth client that adds nothing: requests to a test server carry no Google token. */
const NO_CREDENTIALS = { getRequestHeaders: async (): Promise<Headers> => new Headers(), getProjectId: async (): Promise<string> => 'test-project' };

/** The server's words, never a token. */
export function bigQueryErrorMessage(err: unknown): string {
  const e = err as { message?: unknown; errors?: { message?: unknown }[] } | null;
  const first = Array.isArray(e?.errors) && typeof e?.errors[0]?.message === 'string' ? e.errors[0].message : undefined;
  const msg = first ?? (typeof e?.message === 'string' ? e.message : String(err));
  return msg.replace(/Bearer\s+[\w.~+/-]+=*/gi, 'Bearer <redacted>').replace(/(access_token|key)=[^&\s]+/gi, '$1=<redacted>').slice(0, 500);
}

function statusOf(err: unknown): number | undefined {
  const e = err as { code?: unknown; response?: { statusCode?: unknown; status?: unknown } } | null;
  for (const v of [e?.code, e?.response?.statusCode, e?.response?.status]) if (typeof v === 'number') return v;
  return undefined;
}

/** Promise `p`, or a BigQuerySetupError/Timeout after `ms` (the work behind `p` is abandoned). */
async function within<T>(p: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  const ac = new AbortController();
  const timer = delay(ms, undefined, { signal: ac.signal }).then(
    () => {
      throw onTimeout();
    },
    () => undefined as never,
  );
  try {
    return await Promise.race([p, timer]);
  } finally {
    ac.abort();
  }
}

export interface QueryResult {
  rows: Record<string, unknown>[];
  job: string;
  /** Bytes BigQuery says the job processed (what on-demand pricing bills), when it says. */
  bytesProcessed: number | undefined;
}

export interface BigQueryRunner {
  readonly projectId: string;
  readonly location: string | undefined;
  /** Runs one query (or a script) as a job and waits for it: at most `timeoutMs`. */
  query(sql: string, label: string): Promise<QueryResult>;
}

export interface ConnectOptions {
  dataset: string;
  location?: string;
  client?: BigQueryClientOptions;
  /** Per job (server side: jobTimeoutMs; client side: the deadline of the wait). */
  jobTimeoutMs: number;
  log: Logger;
}

/** Splits `project.dataset`. */
export function parseDataset(dataset: string): { projectId: string; datasetId: string } {
  // The names render.ts accepts for a table token's dataset (no quoting needed inside backquotes).
  const m = /^([A-Za-z0-9_-]+)\.([A-Za-z0-9_]+)$/.exec(dataset);
  if (!m) {
    throw new BigQuerySetupError(`--bq-dataset must be PROJECT.DATASET, got ${JSON.stringify(dataset)}`, 'e.g. --bq-dataset my-project.metering (the dataset must exist)');
  }
  return { projectId: m[1]!, datasetId: m[2]! };
}

/**
 * Builds the client, checks the credentials (fast: a token is fetched once, within a deadline) and
 * that the dataset exists, then returns a runner of jobs in the dataset's location.
 */
export async function connectBigQuery(o: ConnectOptions): Promise<BigQueryRunner> {
  const { projectId: datasetProject, datasetId } = parseDataset(o.dataset);
  const { BigQuery } = await loadBigQuery();
  const endpoint = o.client?.apiEndpoint ?? process.env.BIGQUERY_EMULATOR_HOST;
  const apiEndpoint = endpoint === undefined ? undefined : checkEndpoint(endpoint, o.client?.apiEndpoint ? 'the BigQuery endpoint' : 'BIGQUERY_EMULATOR_HOST');
  const withCredentials = apiEndpoint === undefined || isGoogleHost(apiEndpoint);
  const projectId = o.client?.projectId ?? datasetProject;
  // Every HTTP request is bounded; job waits are bounded by the job deadline below.
  const requestTimeout = Math.max(1000, Math.min(60_000, o.jobTimeoutMs));
  // `timeout` (per HTTP request) is read by @google-cloud/common's Service, though BigQueryOptions does not declare it.
  const options: BigQueryOptions & { timeout: number } = {
    projectId,
    ...(o.location ? { location: o.location } : {}),
    ...(o.client?.keyFilename ? { keyFilename: o.client.keyFilename } : {}),
    ...(o.client?.credentials ? { credentials: o.client.credentials } : {}),
    ...(withCredentials ? {} : { authClient: NO_CREDENTIALS as unknown as BigQueryOptions['authClient'] }),
    timeout: requestTimeout,
    retryOptions: { autoRetry: true, maxRetries: 3, totalTimeout: Math.ceil(Math.min(600_000, o.jobTimeoutMs) / 1000) },
  };
  // An explicit endpoint wins over BIGQUERY_EMULATOR_HOST (the client would prefer the variable).
  const saved = process.env.BIGQUERY_EMULATOR_HOST;
  if (o.client?.apiEndpoint !== undefined) delete process.env.BIGQUERY_EMULATOR_HOST;
  let bigquery: BigQuery;
  try {
    bigquery = new BigQuery({ ...options, ...(apiEndpoint ? { apiEndpoint } : {}) });
  } finally {
    if (saved !== undefined) process.env.BIGQUERY_EMULATOR_HOST = saved;
  }

  if (withCredentials) {
    // No ADC, a missing or broken key file: say so now, not after a retry loop against BigQuery.
    try {
      await within(bigquery.authClient.getAccessToken(), 30_000, () => new BigQuerySetupError('no usable Google credentials: fetching an access token took longer than 30 s', CREDENTIALS_HINT));
    } catch (err) {
      if (err instanceof BigQuerySetupError) throw err;
      throw new BigQuerySetupError(`no usable Google credentials for BigQuery: ${bigQueryErrorMessage(err)}`, CREDENTIALS_HINT);
    }
  }

  let location = o.location;
  try {
    const [metadata] = (await within<unknown>(bigquery.dataset(datasetId, { projectId: datasetProject }).getMetadata(), requestTimeout * 2, () => new BigQueryTimeoutError(`BigQuery did not answer about dataset ${o.dataset} within ${Math.round((requestTimeout * 2) / 1000)} s`))) as [{ location?: string }];
    const actual = metadata.location;
    if (o.location && actual && actual.toLowerCase() !== o.location.toLowerCase()) {
      throw new BigQuerySetupError(`BigQuery dataset ${o.dataset} is in location ${actual}, not ${o.location}`, `drop --bq-location or pass --bq-location ${actual}`);
    }
    location ??= actual;
  } catch (err) {
    if (err instanceof BigQuerySetupError || err instanceof BigQueryTimeoutError) throw err;
    const status = statusOf(err);
    if (status === 404) {
      throw new BigQuerySetupError(
        `BigQuery dataset ${o.dataset} does not exist`,
        `create it first (in the bucket's region), e.g. bq mk --dataset --location=${o.location ?? 'EU'} ${datasetProject}:${datasetId}`,
      );
    }
    if (status === 401 || status === 403) throw new BigQuerySetupError(`BigQuery refused access to dataset ${o.dataset}: ${bigQueryErrorMessage(err)}`, CREDENTIALS_HINT);
    throw new Error(`cannot read BigQuery dataset ${o.dataset}: ${bigQueryErrorMessage(err)}`, { cause: err });
  }

  const query = async (sql: string, label: string): Promise<QueryResult> => {
    const deadline = Date.now() + o.jobTimeoutMs;
    const timedOut = (what: string): BigQueryTimeoutError =>
      new BigQueryTimeoutError(`BigQuery job for ${label} ${what} within --bq-timeout ${Math.round(o.jobTimeoutMs / 1000)} s; it was cancelled`);
    let job: Job;
    try {
      [job] = await within(
        bigquery.createQueryJob({ query: sql, useLegacySql: false, jobTimeoutMs: o.jobTimeoutMs, ...(location ? { location } : {}), labels: { tool: 'metering-ledger' } }),
        o.jobTimeoutMs,
        () => timedOut('was not accepted'),
      );
    } catch (err) {
      if (err instanceof BigQueryTimeoutError) throw err;
      throw new Error(`BigQuery refused the job for ${label}: ${bigQueryErrorMessage(err)}`, { cause: err });
    }
    // Poll the job's state (never a client loop of its own): a growing pause, up to the deadline.
    for (let pause = 100; ; pause = Math.min(2000, pause * 2)) {
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        await within(job.cancel(), 10_000, () => timedOut('did not finish')).catch((err: unknown) => o.log.warn({ job: job.id, error: bigQueryErrorMessage(err) }, 'metering rollup (bigquery): cancel failed'));
        throw timedOut('did not finish');
      }
      const [metadata] = (await within<unknown>(job.getMetadata(), remaining, () => timedOut('did not finish'))) as [{ status?: { state?: string; errorResult?: { message?: string } }; statistics?: { totalBytesProcessed?: string } }];
      if (metadata.status?.state === 'DONE') {
        if (metadata.status.errorResult) throw new Error(`BigQuery job for ${label} failed: ${metadata.status.errorResult.message ?? 'no message'}`);
        const [rows] = (await within(job.getQueryResults({ autoPaginate: true }), Math.max(1000, deadline - Date.now()), () => timedOut('did not return its rows'))) as [Record<string, unknown>[]];
        const bytes = metadata.statistics?.totalBytesProcessed;
        return { rows, job: job.id ?? '', bytesProcessed: bytes === undefined ? undefined : Number(bytes) };
      }
      await delay(Math.min(pause, Math.max(1, deadline - Date.now())));
    }
  };

  return { projectId, location, query };
}
