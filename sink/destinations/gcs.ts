import { IdempotencyStrategy, Storage, type Bucket, type File, type SaveOptions } from '@google-cloud/storage';
import { normalizePrefix } from '../layout.js';
import { PermanentDestinationError, type Destination, type ObjectInfo, type PutIfAbsentResult, type PutOptions } from './destination.js';
import { isGoogleHost } from '../google-host.js';

export interface GcsDestinationOptions {
  /**
   * API endpoint, e.g. a test server `http://127.0.0.1:4443`. Without it the client's usual endpoint
   * (or STORAGE_EMULATOR_HOST) is used. Non-Google hosts are called without credentials.
   */
  endpoint?: string;
  /** Project id, if the credentials do not carry one. */
  projectId?: string;
  /** Use this client instead of building one (its retry settings are then the caller's business). */
  storage?: Storage;
  /**
   * Retries the client itself makes per call on network errors, 408, 429 and 5xx (default 3), before
   * the error reaches the caller, who retries further. 0 turns client retries off.
   */
  clientRetries?: number;
  /** Longest pause between client retries, in seconds (at least 1, the client's minimum; default 8). */
  maxRetryDelaySeconds?: number;
  /** Time budget of one call including its client retries, in seconds (default 120). */
  totalTimeoutSeconds?: number;
  /**
   * Timeout of one HTTP request, body included, in milliseconds (default 60 000): leave room for one
   * upload request (up to resumableThreshold or chunkSize bytes) at the slowest expected bandwidth.
   */
  requestTimeoutMs?: number;
  /** Bodies of at least this many bytes go up as resumable uploads (default 8 MiB); smaller ones in one request. */
  resumableThreshold?: number;
  /** Objects per list request (default 1000, the GCS maximum). */
  listPageSize?: number;
  /** Bytes per resumable request, a multiple of 256 KiB (default 8 MiB): a failed request resends one chunk, not the body. */
  chunkSize?: number;
}

const MIB = 1024 * 1024;
const CHUNK_GRANULE = 256 * 1024;

/** An error from GCS (or the network on the way) that retrying may fix: keeps the status or network code. */
export class GcsRequestError extends Error {
  constructor(
    message: string,
    readonly status?: number,
    readonly code?: string,
  ) {
    super(message);
    this.name = 'GcsRequestError';
  }
}

interface ClientErrorShape {
  code?: unknown;
  status?: unknown;
  message?: unknown;
  response?: { status?: unknown; statusCode?: unknown; data?: unknown };
  errors?: unknown;
}

/** HTTP status of a client error, wherever this client version put it (ApiError.code, Gaxios response.status). */
export function gcsErrorStatus(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const e = err as ClientErrorShape;
  for (const v of [e.code, e.status, e.response?.status, e.response?.statusCode]) {
    if (typeof v === 'number' && v >= 100 && v < 600) return v;
    if (typeof v === 'string' && /^[1-5]\d\d$/.test(v)) return Number(v);
  }
  return undefined;
}

function networkCode(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const e = err as ClientErrorShape & { cause?: { code?: unknown }; type?: unknown; name?: unknown };
  for (const v of [e.code, e.cause?.code]) if (typeof v === 'string' && /^E[A-Z_]+$/.test(v)) return v;
  // node-fetch (JSON calls) says type 'request-timeout'; gaxios (resumable) aborts with AbortError.
  if (e.type === 'request-timeout' || e.name === 'AbortError' || (typeof e.message === 'string' && /network timeout|aborted/i.test(e.message))) return 'ETIMEDOUT';
  return undefined;
}

/** The server's own words, never the request (which may carry an Authorization header). */
function serverMessage(err: unknown): string {
  if (typeof err !== 'object' || err === null) return String(err);
  const e = err as ClientErrorShape;
  const data = e.response?.data as { error?: { message?: unknown } } | undefined;
  const msg = typeof data?.error?.message === 'string' ? data.error.message : typeof e.message === 'string' ? e.message : 'unknown error';
  // Drop anything that looks like a bearer token, a signed URL's signature or a resumable session id
  // (a session URI is itself a credential for that upload), then keep it short.
  return msg
    .replace(/Bearer\s+[\w.~+/-]+=*/gi, 'Bearer <redacted>')
    .replace(/(X-Goog-Signature|access_token|key|upload_id)=[^&\s]+/gi, '$1=<redacted>')
    .slice(0, 300);
}

function checkEndpoint(endpoint: string, what: string): void {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw new Error(`${what} ${JSON.stringify(endpoint)} is not a URL: write it with its scheme, e.g. http://127.0.0.1:4443`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new Error(`${what} must be an http:// or https:// URL, e.g. http://127.0.0.1:4443`);
  }
  if (url.username || url.password) throw new Error(`${what} must not carry credentials in the URL`);
}

function buildStorage(options: GcsDestinationOptions): Storage {
  const storage = buildClient(options);
  // The `timeout` option covers JSON calls and simple uploads; resumable upload requests (gaxios)
  // only see request interceptors, so a hung server would otherwise stall them forever.
  const timeout = options.requestTimeoutMs ?? 60_000;
  // (The declared interceptor type insists on a full request; the resumable path passes {}.)
  const withTimeout = { request: (reqOpts: object) => Object.assign(reqOpts, { timeout }) } as unknown as Storage['interceptors'][number];
  storage.interceptors.push(withTimeout);
  return storage;
}

/**
 * An explicit endpoint wins over STORAGE_EMULATOR_HOST: the client reads that variable in its
 * constructor and would otherwise send JSON calls to the emulator and uploads to the endpoint.
 */
function buildClient(options: GcsDestinationOptions): Storage {
  const retries = options.clientRetries ?? 3;
  const retryOptions = {
    autoRetry: retries > 0,
    maxRetries: Math.max(1, retries),
    retryDelayMultiplier: 2,
    maxRetryDelay: Math.max(1, options.maxRetryDelaySeconds ?? 8),
    totalTimeout: options.totalTimeoutSeconds ?? 120,
    // Our writes are safe to repeat: create-only uploads carry ifGenerationMatch=0, replacing puts
    // write the same bytes again, deletes of a gone object are fine. RetryAlways also keeps v7 from
    // flipping its shared `autoRetry` flag off after an unconditional upload (it never flips it back).
    idempotencyStrategy: IdempotencyStrategy.RetryAlways,
  };
  const timeout = options.requestTimeoutMs ?? 60_000;
  const emulator = process.env.STORAGE_EMULATOR_HOST;
  if (options.endpoint !== undefined) {
    checkEndpoint(options.endpoint, 'the GCS endpoint');
    const saved = emulator;
    delete process.env.STORAGE_EMULATOR_HOST;
    try {
      return new Storage({
        apiEndpoint: options.endpoint.replace(/\/+$/, ''),
        projectId: options.projectId ?? 'metering-ledger',
        useAuthWithCustomEndpoint: isGoogleHost(options.endpoint),
        retryOptions,
        timeout,
      });
    } finally {
      if (saved !== undefined) process.env.STORAGE_EMULATOR_HOST = saved;
    }
  }
  if (emulator !== undefined) {
    checkEndpoint(emulator, 'STORAGE_EMULATOR_HOST');
    return new Storage({ projectId: options.projectId ?? 'metering-ledger', retryOptions, timeout });
  }
  return new Storage({ projectId: options.projectId, retryOptions, timeout });
}

/**
 * Google Cloud Storage through `@google-cloud/storage` v7. Create-only uploads use
 * `ifGenerationMatch: 0`, so a retry of an upload whose answer was lost comes back 412 and reports
 * 'exists' instead of writing a second copy. Errors: 401/403 and a missing bucket become
 * PermanentDestinationError with a hint; the rest (network, 408, 429, 5xx, ...) stay ordinary errors
 * (GcsRequestError with the status or network code), which the caller retries.
 */
export class GcsDestination implements Destination {
  readonly description: string;
  readonly storage: Storage;
  private readonly bucket: Bucket;
  private readonly resumableThreshold: number;
  private readonly chunkSize: number;
  private readonly listPageSize: number;
  private bucketVerified = false;
  /** Whether calls carry Google credentials (false for emulators and test servers). */
  private readonly usesCredentials: boolean;
  private credentialsChecked = false;

  constructor(
    readonly bucketName: string,
    private readonly options: GcsDestinationOptions = {},
  ) {
    if (!/^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$/.test(bucketName)) {
      throw new Error(`invalid GCS bucket name ${JSON.stringify(bucketName)}: 3-222 characters of a-z, 0-9, '.', '_', '-'`);
    }
    this.storage = options.storage ?? buildStorage(options);
    this.bucket = this.storage.bucket(bucketName);
    this.resumableThreshold = options.resumableThreshold ?? 8 * MIB;
    const chunk = options.chunkSize ?? 8 * MIB;
    if (chunk < CHUNK_GRANULE || chunk % CHUNK_GRANULE !== 0) throw new Error(`chunkSize must be a positive multiple of 256 KiB, got ${chunk}`);
    this.chunkSize = chunk;
    this.listPageSize = Math.min(1000, Math.max(1, options.listPageSize ?? 1000));
    const endpoint = options.endpoint ?? process.env.STORAGE_EMULATOR_HOST;
    this.usesCredentials = options.storage === undefined && (endpoint === undefined || (options.endpoint !== undefined && isGoogleHost(options.endpoint)));
    this.description = endpoint ? `gs://${bucketName} (endpoint ${endpoint.replace(/\/\/[^@/]*@/, '//')})` : `gs://${bucketName}`;
  }

  /**
   * The same bucket through a client that does not retry (the shipper retries every call itself).
   * A client passed in by the caller is left as it is: its retry settings are the caller's.
   */
  withoutClientRetries(): Destination {
    if (this.options.storage !== undefined || this.options.clientRetries === 0) return this;
    return new GcsDestination(this.bucketName, { ...this.options, clientRetries: 0 });
  }

  /**
   * Loads the credentials once before the first call: the client reports a credential problem on
   * upload only as "Cannot call write after a stream was destroyed", which helps nobody.
   */
  private async checkCredentials(): Promise<void> {
    if (!this.usesCredentials || this.credentialsChecked) return;
    try {
      const auth = await this.storage.authClient.getClient();
      await auth.getAccessToken();
      this.credentialsChecked = true;
    } catch (err) {
      throw new PermanentDestinationError(
        `cannot get Google credentials for gs://${this.bucketName}: ${serverMessage(err)}`,
        'set GOOGLE_APPLICATION_CREDENTIALS to a readable service-account key file, run under a service account ' +
          '(GCE/GKE workload identity), or run `gcloud auth application-default login`; for an emulator or test ' +
          'server give its endpoint (or STORAGE_EMULATOR_HOST) instead',
      );
    }
  }

  private saveOptions(body: Buffer, options: PutOptions | undefined): SaveOptions {
    const resumable = body.length >= this.resumableThreshold;
    const metadata: { contentType?: string; contentEncoding?: string; metadata?: Record<string, string> } = {};
    if (options?.contentType) metadata.contentType = options.contentType;
    if (options?.contentEncoding) metadata.contentEncoding = options.contentEncoding;
    if (options?.metadata) metadata.metadata = { ...options.metadata };
    return {
      resumable,
      ...(resumable ? { chunkSize: this.chunkSize } : {}),
      // The body is uploaded exactly as given (already gzipped if contentEncoding says so).
      gzip: false,
      // MD5 is node's native hash; the client computes CRC32C in JavaScript, which cost 15-20 % of
      // the shipper's CPU (docs/benchmarks.md). GCS returns md5Hash for every non-composite upload.
      validation: 'md5',
      metadata,
    };
  }

  async putIfAbsent(name: string, body: Buffer, options?: PutOptions): Promise<PutIfAbsentResult> {
    await this.checkCredentials();
    for (let attempt = 1; ; attempt++) {
      try {
        await this.bucket.file(name).save(body, { ...this.saveOptions(body, options), preconditionOpts: { ifGenerationMatch: 0 } });
        this.bucketVerified = true;
        return 'created';
      } catch (err) {
        // 412 also answers a retry of our own upload whose response was lost: the object is there.
        if (gcsErrorStatus(err) === 412) return 'exists';
        // v7 gives up on a resumable session whose final answer was lost (the status query says
        // "complete", it reads that as offset 0 and throws a RangeError). A fresh create-only upload
        // settles it: 412 if our bytes landed, a normal upload if not.
        if (err instanceof RangeError && attempt === 1) continue;
        throw this.translate(err, 'upload', name, true);
      }
    }
  }

  async put(name: string, body: Buffer, options?: PutOptions): Promise<void> {
    await this.checkCredentials();
    try {
      await this.bucket.file(name).save(body, this.saveOptions(body, options));
      this.bucketVerified = true;
    } catch (err) {
      throw this.translate(err, 'upload', name, true);
    }
  }

  async get(name: string): Promise<Buffer | undefined> {
    await this.checkCredentials();
    try {
      // decompress: false returns the bytes as stored (gzip stays gzip), checked against their crc32c.
      const [data] = await this.bucket.file(name).download({ decompress: false, validation: 'crc32c' });
      return data;
    } catch (err) {
      if (await this.isMissingObject(err)) return undefined;
      throw this.translate(err, 'download', name, false);
    }
  }

  async head(name: string): Promise<ObjectInfo | undefined> {
    await this.checkCredentials();
    try {
      const [meta] = await this.bucket.file(name).getMetadata();
      return { name, size: Number(meta.size ?? 0), metadata: stringMetadata(meta.metadata), ...updatedOf(meta.updated) };
    } catch (err) {
      if (await this.isMissingObject(err)) return undefined;
      throw this.translate(err, 'read metadata of', name, false);
    }
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    await this.checkCredentials();
    let pageToken: string | undefined;
    do {
      let files: File[];
      let next: { pageToken?: string } | null | undefined;
      try {
        [files, next] = await this.bucket.getFiles({ prefix, autoPaginate: false, maxResults: this.listPageSize, ...(pageToken ? { pageToken } : {}) });
      } catch (err) {
        throw this.translate(err, 'list', `${prefix}*`, true);
      }
      this.bucketVerified = true;
      for (const f of files) yield { name: f.name, size: Number(f.metadata.size ?? 0), metadata: stringMetadata(f.metadata.metadata), ...updatedOf(f.metadata.updated) };
      pageToken = next?.pageToken;
    } while (pageToken);
  }

  async delete(name: string): Promise<void> {
    await this.checkCredentials();
    try {
      await this.bucket.file(name).delete();
    } catch (err) {
      if (await this.isMissingObject(err)) return;
      throw this.translate(err, 'delete', name, false);
    }
  }

  /** A 404 that means "no such object", as opposed to "no such bucket". */
  private async isMissingObject(err: unknown): Promise<boolean> {
    if (gcsErrorStatus(err) !== 404) return false;
    if (/bucket does not exist/i.test(serverMessage(err))) return false;
    if (this.bucketVerified) return true;
    // GCS says "No such object" for a missing object, but make sure once per process.
    try {
      const [exists] = await this.bucket.exists();
      this.bucketVerified = exists;
      return exists;
    } catch {
      return true;
    }
  }

  private translate(err: unknown, action: string, name: string, notFoundMeansBucket: boolean): Error {
    const status = gcsErrorStatus(err);
    const where = `gs://${this.bucketName}/${name}`;
    const detail = serverMessage(err);
    if (status === 401 || status === 403) {
      return new PermanentDestinationError(
        `GCS refused to ${action} ${where}: ${status} ${detail}`,
        `grant the shipper's identity roles/storage.objectAdmin on bucket ${this.bucketName} ` +
          `(gcloud storage buckets add-iam-policy-binding gs://${this.bucketName} --member=<identity> --role=roles/storage.objectAdmin), ` +
          `or check GOOGLE_APPLICATION_CREDENTIALS / the VM service account points at an identity that has it`,
        status,
      );
    }
    if (status === 404 && (notFoundMeansBucket || /bucket does not exist/i.test(detail))) {
      this.bucketVerified = false;
      return new PermanentDestinationError(
        `bucket ${this.bucketName} does not exist (${action} ${where})`,
        `create it (gcloud storage buckets create gs://${this.bucketName} --location=<region>) or fix the bucket in --dest`,
        404,
      );
    }
    const code = networkCode(err);
    const what = status !== undefined ? `${status} ${detail}` : code ? `${code} ${detail}` : detail;
    return new GcsRequestError(`GCS ${action} ${where} failed: ${what}`, status, code);
  }
}

function stringMetadata(meta: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (typeof meta !== 'object' || meta === null) return out;
  for (const [k, v] of Object.entries(meta as Record<string, unknown>)) if (v !== null && v !== undefined) out[k] = String(v);
  return out;
}

/** Parses `gs://bucket[/prefix]`; the prefix comes back normalized (no leading/trailing slash, '' for none). */
export function parseGcsUrl(url: string): { bucket: string; prefix: string } {
  const m = /^gs:\/\/([^/]+)(?:\/(.*))?$/.exec(url);
  if (!m) throw new Error(`not a GCS URL ${JSON.stringify(url)}: expected gs://bucket/prefix`);
  return { bucket: m[1]!, prefix: normalizePrefix(m[2] ?? '') };
}

/** `gs://bucket/prefix` -> a destination for the bucket and the object-name prefix inside it. */
export async function gcsFromUrl(url: string, options: GcsDestinationOptions = {}): Promise<{ destination: Destination; prefix: string }> {
  const { bucket, prefix } = parseGcsUrl(url);
  return { destination: new GcsDestination(bucket, options), prefix };
}

/** GCS's own time of the object's last write (RFC 3339), as epoch ms; nothing when absent or unparsable. */
function updatedOf(updated: unknown): { updated?: number } {
  const ms = typeof updated === 'string' ? Date.parse(updated) : NaN;
  return Number.isFinite(ms) ? { updated: ms } : {};
}
