/**
 * A Google Cloud Storage test server: the JSON API subset that `@google-cloud/storage` v7 uses for
 * objects (media/multipart/resumable uploads, metadata, download, list, patch, delete, generation
 * preconditions) and buckets (get, insert, list, delete), with fault injection so tests can play
 * outages: error statuses, delays, connections dropped mid-request, uploads stored but never
 * acknowledged, refused connections. In memory, or persisted under a directory.
 *
 * Point the client at it with `new Storage({ apiEndpoint: server.url, useAuthWithCustomEndpoint: false })`
 * or `STORAGE_EMULATOR_HOST=<server.url>` (the server answers both `/storage/v1/b/...` and `/b/...`).
 *
 *   const server = await startGcsServer({ buckets: ['ledger'] });
 *   server.failNext(3, 503, { op: 'upload' });          // GCS-style JSON error bodies
 *   server.dropNext(1, { op: 'upload' }, 4096);         // reset after 4 KiB of body: nothing stored
 *   server.dropResponseNext(1, { op: 'upload' });       // stored, then reset: the retry meets 412
 *   server.delayNext(1, 2000, { op: 'object.list' });
 *   server.injectFault({ match: { when: (r) => ... }, times: Infinity, action: { type: 'status', status: 403 } });
 *   await server.refuseConnections(); ... await server.acceptConnections();
 *   server.stats / server.requestLog / server.listObjects('ledger', 'prefix/')
 *   await server.stop();
 *
 * Ops for matching: upload.media|multipart|resumable.start|resumable.chunk|resumable.status,
 * object.get|download|list|patch|delete, bucket.get|insert|list|delete ('upload' matches all uploads).
 */
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { crc32cBase64 } from './gcs-crc32c.js';

export type GcsOperation =
  | 'bucket.list'
  | 'bucket.insert'
  | 'bucket.get'
  | 'bucket.delete'
  | 'object.list'
  | 'object.get'
  | 'object.download'
  | 'object.patch'
  | 'object.delete'
  | 'upload.media'
  | 'upload.multipart'
  | 'upload.resumable.start'
  | 'upload.resumable.chunk'
  | 'upload.resumable.status'
  | 'unknown';

export interface GcsRequestInfo {
  op: GcsOperation;
  method: string;
  /** URL path as received (percent-encoded). */
  path: string;
  query: URLSearchParams;
  bucket?: string;
  object?: string;
}

export interface FaultMatch {
  /** Operation name or prefix: 'upload' matches every upload request, 'upload.resumable' the resumable ones. */
  op?: string | string[];
  method?: string;
  bucket?: string;
  object?: string | RegExp;
  when?: (request: GcsRequestInfo) => boolean;
}

export type FaultAction =
  /** Answer with this status and a GCS-style JSON error body (the request body is read first). */
  | { type: 'status'; status: number; message?: string; reason?: string; headers?: Record<string, string> }
  /** Read the request, wait, then handle it normally (even if the client gave up meanwhile). */
  | { type: 'delay'; ms: number }
  /** Read up to `afterBodyBytes` of the request body (default 0), then destroy the socket: nothing is stored. */
  | { type: 'drop'; afterBodyBytes?: number }
  /** Handle the request fully (an upload is stored), then destroy the socket instead of answering. */
  | { type: 'dropAfterHandling' };

export interface FaultRule {
  match?: FaultMatch;
  /** How many matching requests this rule applies to (default 1; Infinity for "until removed"). */
  times?: number;
  action: FaultAction;
}

export interface FaultHandle {
  readonly hits: number;
  readonly remaining: number;
  remove(): void;
}

export interface GcsRequestRecord {
  op: GcsOperation;
  method: string;
  bucket?: string;
  object?: string;
  /** HTTP status sent, or 'dropped' when the socket was destroyed instead. */
  status: number | 'dropped';
  fault?: FaultAction['type'];
}

export interface GcsServerStats {
  requests: number;
  connections: number;
  faultsApplied: number;
  droppedRequests: number;
  byOp: Partial<Record<GcsOperation, number>>;
  byStatus: Record<string, number>;
  /** Objects created or replaced by completed uploads (a retried upload answered 412 does not count). */
  objectsWritten: number;
}

export interface GcsServerOptions {
  host?: string;
  /** 0 (default) picks a free port. */
  port?: number;
  /** Persist buckets and objects under this directory (loaded on start); in memory when absent. */
  dir?: string;
  /** Buckets that exist from the start. */
  buckets?: string[];
  /** Create a bucket on its first use instead of answering 404 (default false, like GCS). */
  autoCreateBuckets?: boolean;
  /** Keep the last N request records in `requestLog` (default 10000). */
  requestLogLimit?: number;
}

export interface StoredObjectView {
  name: string;
  data: Buffer;
  generation: string;
  metageneration: number;
  contentType: string;
  contentEncoding?: string;
  metadata: Record<string, string>;
  md5Hash: string;
  crc32c: string;
}

interface StoredObject {
  name: string;
  data: Buffer;
  generation: string;
  metageneration: number;
  contentType: string;
  contentEncoding?: string;
  cacheControl?: string;
  contentDisposition?: string;
  contentLanguage?: string;
  metadata: Record<string, string>;
  md5Hash: string;
  crc32c: string;
  timeCreated: string;
  updated: string;
}

interface BucketState {
  name: string;
  timeCreated: string;
  objects: Map<string, StoredObject>;
}

interface ResumableSession {
  id: string;
  bucket: string;
  name: string;
  resource: Record<string, unknown>;
  contentType?: string;
  preconditions: URLSearchParams;
  chunks: Buffer[];
  received: number;
  /** Declared total size, once known. */
  total?: number;
  /** The object resource once the upload completed: later PUTs on the session answer it again. */
  completed?: Record<string, unknown>;
}

interface Reply {
  status: number;
  headers?: Record<string, string | number>;
  body?: Buffer | string | Record<string, unknown>;
}

interface ActiveFault {
  rule: FaultRule;
  remaining: number;
  hits: number;
}

const REASONS: Record<number, string> = {
  400: 'invalid',
  401: 'required',
  403: 'forbidden',
  404: 'notFound',
  408: 'requestTimeout',
  409: 'conflict',
  412: 'conditionNotMet',
  429: 'rateLimitExceeded',
  500: 'backendError',
  502: 'backendError',
  503: 'backendError',
  504: 'backendError',
};

const BUCKET_NAME = /^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$/;

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly reason = REASONS[status] ?? 'invalid',
  ) {
    super(message);
  }
}

export function gcsErrorBody(status: number, message: string, reason = REASONS[status] ?? 'invalid'): Record<string, unknown> {
  return { error: { code: status, message, errors: [{ message, domain: 'global', reason }] } };
}

function md5Base64(data: Buffer): string {
  return createHash('md5').update(data).digest('base64');
}

function sleep(ms: number, timers: Set<NodeJS.Timeout>): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(() => {
      timers.delete(t);
      resolve();
    }, ms);
    timers.add(t);
  });
}

function readBody(req: http.IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
    req.on('aborted', () => reject(new Error('request aborted')));
  });
}

/** Reads at most `limit` bytes of the body (less if it ends first), leaving the rest unread. */
function readSome(req: http.IncomingMessage, limit: number): Promise<void> {
  return new Promise((resolve) => {
    if (limit <= 0) return resolve();
    let got = 0;
    const done = (): void => {
      req.removeListener('data', onData);
      req.pause();
      resolve();
    };
    const onData = (c: Buffer): void => {
      got += c.length;
      if (got >= limit) done();
    };
    req.on('data', onData);
    req.once('end', done);
    req.once('error', done);
    req.once('close', done);
  });
}

/** Splits a multipart/related body into its parts (headers are not needed beyond Content-Type). */
function parseMultipart(body: Buffer, boundary: string): { contentType?: string; data: Buffer }[] {
  const delimiter = Buffer.from(`--${boundary}`);
  const parts: { contentType?: string; data: Buffer }[] = [];
  const starts: number[] = [];
  let at = body.indexOf(delimiter);
  while (at !== -1) {
    // A delimiter counts only at the start of the body or of a line.
    if (at === 0 || (body[at - 1] === 0x0a && body[at - 2] === 0x0d)) starts.push(at);
    at = body.indexOf(delimiter, at + delimiter.length);
  }
  for (let i = 0; i + 1 < starts.length; i++) {
    let partStart = starts[i]! + delimiter.length;
    if (body[partStart] === 0x0d && body[partStart + 1] === 0x0a) partStart += 2;
    let partEnd = starts[i + 1]!;
    if (body[partEnd - 1] === 0x0a && body[partEnd - 2] === 0x0d) partEnd -= 2;
    const part = body.subarray(partStart, partEnd);
    const headerEnd = part.indexOf('\r\n\r\n');
    if (headerEnd === -1) throw new HttpError(400, 'malformed multipart body: a part has no header terminator');
    const headerText = part.subarray(0, headerEnd).toString('latin1');
    const contentType = /^content-type:\s*(.+)$/im.exec(headerText)?.[1]?.trim();
    parts.push({ contentType, data: part.subarray(headerEnd + 4) });
  }
  return parts;
}

/** Content-Range forms: "bytes STAR/N" or "bytes STAR/STAR" (status query), "bytes a-b/N", "bytes a-b/STAR", "bytes a-STAR/N". */
function parseContentRange(header: string | undefined): { query: boolean; start?: number; end?: number; total?: number } | undefined {
  if (header === undefined) return undefined;
  const m = /^bytes\s+(?:\*|(\d+)-(\d+|\*))\/(\d+|\*)$/.exec(header.trim());
  if (!m) throw new HttpError(400, `invalid Content-Range ${JSON.stringify(header)}`);
  const total = m[3] === '*' ? undefined : Number(m[3]);
  if (m[1] === undefined) return { query: true, total };
  return { query: false, start: Number(m[1]), end: m[2] === '*' ? undefined : Number(m[2]), total };
}

export class GcsTestServer {
  readonly options: Required<Pick<GcsServerOptions, 'host' | 'autoCreateBuckets' | 'requestLogLimit'>> & GcsServerOptions;
  readonly stats: GcsServerStats = { requests: 0, connections: 0, faultsApplied: 0, droppedRequests: 0, byOp: {}, byStatus: {}, objectsWritten: 0 };
  readonly requestLog: GcsRequestRecord[] = [];
  private readonly http: http.Server;
  private readonly buckets = new Map<string, BucketState>();
  private readonly sessions = new Map<string, ResumableSession>();
  private readonly sockets = new Set<Socket>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private faults: ActiveFault[] = [];
  private lastGeneration = 0n;
  private boundPort = 0;
  private listening = false;

  constructor(options: GcsServerOptions = {}) {
    this.options = { host: '127.0.0.1', autoCreateBuckets: false, requestLogLimit: 10_000, ...options };
    this.http = http.createServer((req, res) => void this.handle(req, res));
    // The client keeps connections alive; a short server idle timeout would race its reuse of a
    // socket and produce stray ECONNRESETs that are not part of any test's plan.
    this.http.keepAliveTimeout = 120_000;
    // Keep-alive sockets of the client must die too when we refuse connections or stop.
    this.http.on('connection', (socket: Socket) => {
      this.stats.connections++;
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
    if (options.dir) this.load(options.dir);
    for (const b of options.buckets ?? []) this.createBucket(b);
  }

  /** Starts listening; resolves with the base URL (`http://127.0.0.1:<port>`). */
  async start(): Promise<string> {
    await this.listen(this.options.port ?? 0);
    return this.url;
  }

  get port(): number {
    return this.boundPort;
  }

  /** Base URL for `apiEndpoint` / `STORAGE_EMULATOR_HOST`. */
  get url(): string {
    const host = this.options.host.includes(':') ? `[${this.options.host}]` : this.options.host;
    return `http://${host}:${this.boundPort}`;
  }

  private listen(port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      this.http.once('error', onError);
      this.http.listen(port, this.options.host, () => {
        this.http.removeListener('error', onError);
        this.boundPort = (this.http.address() as AddressInfo).port;
        this.listening = true;
        resolve();
      });
    });
  }

  private closeListener(): Promise<void> {
    if (!this.listening) return Promise.resolve();
    this.listening = false;
    return new Promise((resolve) => {
      this.http.close(() => resolve());
      for (const s of this.sockets) s.destroy();
    });
  }

  /** Stops accepting connections (clients get ECONNREFUSED) and kills open ones, until `acceptConnections`. */
  async refuseConnections(): Promise<void> {
    await this.closeListener();
    // Give clients a moment to see their kept-alive sockets close, so the next request meets a
    // refused connection rather than a stale socket (both happen in real life; tests want to choose).
    await sleep(50, this.timers);
  }

  /** Listens again on the same port. */
  async acceptConnections(): Promise<void> {
    if (!this.listening) await this.listen(this.boundPort);
  }

  async stop(): Promise<void> {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    await this.closeListener();
  }

  // ---- fault injection ----

  /** Adds a fault rule; rules are tried in the order added, the first matching one with uses left applies. */
  injectFault(rule: FaultRule): FaultHandle {
    const active: ActiveFault = { rule, remaining: rule.times ?? 1, hits: 0 };
    this.faults.push(active);
    const faults = (): ActiveFault[] => this.faults;
    const self = this;
    return {
      get hits() {
        return active.hits;
      },
      get remaining() {
        return active.remaining;
      },
      remove() {
        self.faults = faults().filter((f) => f !== active);
      },
    };
  }

  /** The next `times` matching requests get `status` (a GCS-style JSON error). */
  failNext(times: number, status: number, match?: FaultMatch): FaultHandle {
    return this.injectFault({ match, times, action: { type: 'status', status } });
  }

  /** The next `times` matching requests lose their connection after `afterBodyBytes` bytes of body. */
  dropNext(times: number, match?: FaultMatch, afterBodyBytes = 0): FaultHandle {
    return this.injectFault({ match, times, action: { type: 'drop', afterBodyBytes } });
  }

  /** The next `times` matching requests are handled (uploads stored) but their connection is reset instead of answered. */
  dropResponseNext(times: number, match?: FaultMatch): FaultHandle {
    return this.injectFault({ match, times, action: { type: 'dropAfterHandling' } });
  }

  delayNext(times: number, ms: number, match?: FaultMatch): FaultHandle {
    return this.injectFault({ match, times, action: { type: 'delay', ms } });
  }

  clearFaults(): void {
    this.faults = [];
  }

  private takeFault(info: GcsRequestInfo): FaultAction | undefined {
    for (const f of this.faults) {
      if (f.remaining <= 0 || !matches(f.rule.match, info)) continue;
      f.remaining--;
      f.hits++;
      if (f.remaining <= 0) this.faults = this.faults.filter((x) => x !== f);
      this.stats.faultsApplied++;
      return f.rule.action;
    }
    return undefined;
  }

  // ---- direct inspection (for tests that check what landed, not for fidelity tests) ----

  createBucket(name: string): void {
    if (!BUCKET_NAME.test(name)) throw new Error(`invalid bucket name ${JSON.stringify(name)}`);
    if (this.buckets.has(name)) return;
    this.buckets.set(name, { name, timeCreated: new Date().toISOString(), objects: new Map() });
    this.persistBucket(name);
  }

  bucketNames(): string[] {
    return [...this.buckets.keys()].sort();
  }

  listObjects(bucket: string, prefix = ''): StoredObjectView[] {
    const b = this.buckets.get(bucket);
    if (!b) return [];
    return [...b.objects.values()]
      .filter((o) => o.name.startsWith(prefix))
      .sort((x, y) => (x.name < y.name ? -1 : x.name > y.name ? 1 : 0))
      .map(view);
  }

  getObject(bucket: string, name: string): StoredObjectView | undefined {
    const o = this.buckets.get(bucket)?.objects.get(name);
    return o ? view(o) : undefined;
  }

  // ---- request handling ----

  private record(info: GcsRequestInfo, status: number | 'dropped', fault?: FaultAction['type']): void {
    this.stats.byStatus[String(status)] = (this.stats.byStatus[String(status)] ?? 0) + 1;
    if (status === 'dropped') this.stats.droppedRequests++;
    this.requestLog.push({ op: info.op, method: info.method, bucket: info.bucket, object: info.object, status, fault });
    if (this.requestLog.length > this.options.requestLogLimit) this.requestLog.splice(0, this.requestLog.length - this.options.requestLogLimit);
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const info = classify(req.method ?? 'GET', url, req.headers['content-range']);
    this.stats.requests++;
    this.stats.byOp[info.op] = (this.stats.byOp[info.op] ?? 0) + 1;
    const fault = this.takeFault(info);
    try {
      if (fault?.type === 'drop') {
        await readSome(req, fault.afterBodyBytes ?? 0);
        req.socket.destroy();
        this.record(info, 'dropped', 'drop');
        return;
      }
      const body = await readBody(req);
      // A slow server: the request arrived whole, its handling is late. It still happens if the
      // client gave up meanwhile (so a timed-out upload can land anyway, as on GCS).
      if (fault?.type === 'delay') await sleep(fault.ms, this.timers);
      let reply: Reply;
      if (fault?.type === 'status') {
        reply = {
          status: fault.status,
          headers: fault.headers,
          body: gcsErrorBody(fault.status, fault.message ?? `injected fault: ${fault.status}`, fault.reason),
        };
      } else {
        try {
          reply = this.route(info, req, body);
        } catch (err) {
          if (!(err instanceof HttpError)) throw err;
          reply = { status: err.status, body: gcsErrorBody(err.status, err.message, err.reason) };
        }
      }
      if (req.socket.destroyed) {
        this.record(info, 'dropped', fault?.type);
        return;
      }
      if (fault?.type === 'dropAfterHandling') {
        req.socket.destroy();
        this.record(info, 'dropped', 'dropAfterHandling');
        return;
      }
      this.send(res, reply);
      this.record(info, reply.status, fault?.type);
    } catch (err) {
      // The client went away mid-request (or a bug): nothing was stored for this request.
      if (!res.headersSent && !req.socket.destroyed) {
        this.send(res, { status: 500, body: gcsErrorBody(500, `test server error: ${(err as Error).message}`) });
        this.record(info, 500);
      } else {
        req.socket.destroy();
        this.record(info, 'dropped');
      }
    }
  }

  private send(res: http.ServerResponse, reply: Reply): void {
    let body: Buffer;
    const headers: Record<string, string | number> = { ...(reply.headers ?? {}) };
    if (reply.body === undefined) body = Buffer.alloc(0);
    else if (Buffer.isBuffer(reply.body)) body = reply.body;
    else if (typeof reply.body === 'string') body = Buffer.from(reply.body);
    else {
      body = Buffer.from(JSON.stringify(reply.body));
      headers['Content-Type'] ??= 'application/json; charset=UTF-8';
    }
    headers['Content-Length'] = body.length;
    res.writeHead(reply.status, headers);
    res.end(body);
  }

  private bucket(name: string | undefined): BucketState {
    if (!name) throw new HttpError(400, 'bucket name missing');
    let b = this.buckets.get(name);
    if (!b && this.options.autoCreateBuckets && BUCKET_NAME.test(name)) {
      this.createBucket(name);
      b = this.buckets.get(name);
    }
    if (!b) throw new HttpError(404, 'The specified bucket does not exist.');
    return b;
  }

  private route(info: GcsRequestInfo, req: http.IncomingMessage, body: Buffer): Reply {
    const q = info.query;
    switch (info.op) {
      case 'bucket.list':
        return {
          status: 200,
          body: { kind: 'storage#buckets', items: this.bucketNames().map((n) => this.bucketResource(this.buckets.get(n)!)) },
        };
      case 'bucket.insert': {
        const resource = parseJson(body);
        const name = typeof resource.name === 'string' ? resource.name : '';
        if (!BUCKET_NAME.test(name)) throw new HttpError(400, `Invalid bucket name: '${name}'`);
        if (this.buckets.has(name)) throw new HttpError(409, 'Your previous request to create the named bucket succeeded and you already own it.');
        this.createBucket(name);
        return { status: 200, body: this.bucketResource(this.buckets.get(name)!) };
      }
      case 'bucket.get':
        return { status: 200, body: this.bucketResource(this.bucket(info.bucket)) };
      case 'bucket.delete': {
        const b = this.bucket(info.bucket);
        if (b.objects.size > 0) throw new HttpError(409, 'The bucket you tried to delete is not empty.');
        this.buckets.delete(b.name);
        this.unpersistBucket(b.name);
        return { status: 204 };
      }
      case 'object.list':
        return this.list(this.bucket(info.bucket), q);
      case 'object.get': {
        const o = this.existing(info, q);
        return { status: 200, body: this.objectResource(info.bucket!, o) };
      }
      case 'object.download':
        return this.download(info, req, q);
      case 'object.patch': {
        const b = this.bucket(info.bucket);
        const o = this.existing(info, q);
        const patch = parseJson(body);
        const next: StoredObject = { ...o, metadata: { ...o.metadata }, metageneration: o.metageneration + 1, updated: new Date().toISOString() };
        if (patch.metadata === null) next.metadata = {};
        else if (isRecord(patch.metadata)) {
          for (const [k, v] of Object.entries(patch.metadata)) {
            if (v === null) delete next.metadata[k];
            else next.metadata[k] = String(v);
          }
        }
        for (const field of ['contentType', 'contentEncoding', 'cacheControl', 'contentDisposition', 'contentLanguage'] as const) {
          if (typeof patch[field] === 'string') next[field] = patch[field];
        }
        b.objects.set(o.name, next);
        this.persistObject(b.name, next);
        return { status: 200, body: this.objectResource(b.name, next) };
      }
      case 'object.delete': {
        const b = this.bucket(info.bucket);
        const o = this.existing(info, q);
        b.objects.delete(o.name);
        this.unpersistObject(b.name, o.name);
        return { status: 204 };
      }
      case 'upload.media': {
        const b = this.bucket(info.bucket);
        const name = q.get('name');
        if (!name) throw new HttpError(400, 'Required parameter: name');
        const resource: Record<string, unknown> = {};
        if (q.get('contentEncoding')) resource.contentEncoding = q.get('contentEncoding');
        return this.finishUpload(b, name, resource, req.headers['content-type'], body, q, req.headers['x-goog-hash']);
      }
      case 'upload.multipart': {
        const b = this.bucket(info.bucket);
        const boundary = /boundary="?([^";]+)"?/i.exec(req.headers['content-type'] ?? '')?.[1];
        if (!boundary) throw new HttpError(400, 'multipart upload without a boundary');
        const parts = parseMultipart(body, boundary);
        if (parts.length !== 2) throw new HttpError(400, `multipart upload must have 2 parts, got ${parts.length}`);
        const resource = parseJson(parts[0]!.data);
        const name = q.get('name') ?? (typeof resource.name === 'string' ? resource.name : undefined);
        if (!name) throw new HttpError(400, 'Required parameter: name');
        return this.finishUpload(b, name, resource, parts[1]!.contentType, parts[1]!.data, q, req.headers['x-goog-hash']);
      }
      case 'upload.resumable.start': {
        const b = this.bucket(info.bucket);
        const resource = body.length > 0 ? parseJson(body) : {};
        const name = q.get('name') ?? (typeof resource.name === 'string' ? resource.name : undefined);
        if (!name) throw new HttpError(400, 'Required parameter: name');
        // GCS checks preconditions when the session starts as well as when it completes.
        checkPreconditions(b.objects.get(name), q);
        const id = randomBytes(16).toString('hex');
        const declared = req.headers['x-upload-content-length'];
        this.sessions.set(id, {
          id,
          bucket: b.name,
          name,
          resource,
          contentType: (req.headers['x-upload-content-type'] as string | undefined) ?? (typeof resource.contentType === 'string' ? resource.contentType : undefined),
          preconditions: new URLSearchParams([...q].filter(([k]) => k.startsWith('if'))),
          chunks: [],
          received: 0,
          total: declared !== undefined ? Number(declared) : undefined,
        });
        const host = req.headers.host ?? `${this.options.host}:${this.boundPort}`;
        const location = `http://${host}/upload/storage/v1/b/${encodeURIComponent(b.name)}/o?uploadType=resumable&name=${encodeURIComponent(name)}&upload_id=${id}`;
        return { status: 200, headers: { Location: location, 'X-GUploader-UploadID': id } };
      }
      case 'upload.resumable.chunk':
      case 'upload.resumable.status':
        return this.resumablePut(q, req, body);
      default:
        throw new HttpError(404, `Not Found: ${info.method} ${info.path}`, 'notFound');
    }
  }

  private existing(info: GcsRequestInfo, q: URLSearchParams): StoredObject {
    const b = this.bucket(info.bucket);
    const o = info.object === undefined ? undefined : b.objects.get(info.object);
    const generation = q.get('generation');
    if (!o || (generation !== null && generation !== o.generation)) {
      throw new HttpError(404, `No such object: ${b.name}/${info.object ?? ''}`);
    }
    checkPreconditions(o, q);
    return o;
  }

  private resumablePut(q: URLSearchParams, req: http.IncomingMessage, body: Buffer): Reply {
    const id = q.get('upload_id') ?? '';
    const session = this.sessions.get(id);
    if (!session) throw new HttpError(404, 'No such upload session (it expired or never existed).');
    if (session.completed) return { status: 200, body: session.completed };
    const range = parseContentRange(req.headers['content-range']);
    if (range?.total !== undefined) {
      if (session.total !== undefined && session.total !== range.total) throw new HttpError(400, `total size changed from ${session.total} to ${range.total}`);
      session.total = range.total;
    }
    if (range?.query) {
      if (session.total !== undefined && session.received === session.total) return this.completeSession(session, req);
      return this.incomplete(session);
    }
    const start = range?.start ?? 0;
    if (start > session.received) throw new HttpError(400, `upload chunk starts at ${start} but only ${session.received} bytes were received`);
    if (range?.end !== undefined && range.end - start + 1 !== body.length) {
      throw new HttpError(400, `Content-Range declares ${range.end - start + 1} bytes but the body has ${body.length}`);
    }
    // Bytes the server already has are ignored (a client resending after an unknown outcome).
    const fresh = body.subarray(session.received - start);
    if (fresh.length > 0) {
      session.chunks.push(Buffer.from(fresh));
      session.received += fresh.length;
    }
    const finalRequest = range === undefined || range.end === undefined || session.total !== undefined;
    if (range?.end === undefined && session.total === undefined) session.total = session.received;
    if (session.total !== undefined && session.received > session.total) throw new HttpError(400, `received ${session.received} bytes, more than the declared ${session.total}`);
    if (finalRequest && session.total === session.received) return this.completeSession(session, req);
    return this.incomplete(session);
  }

  private incomplete(session: ResumableSession): Reply {
    const headers: Record<string, string> = {};
    if (session.received > 0) headers.Range = `bytes=0-${session.received - 1}`;
    return { status: 308, headers };
  }

  private completeSession(session: ResumableSession, req: http.IncomingMessage): Reply {
    const b = this.bucket(session.bucket);
    const data = Buffer.concat(session.chunks);
    const reply = this.finishUpload(b, session.name, session.resource, session.contentType, data, session.preconditions, req.headers['x-goog-hash']);
    session.completed = reply.body as Record<string, unknown>;
    session.chunks = [];
    return reply;
  }

  private finishUpload(
    b: BucketState,
    name: string,
    resource: Record<string, unknown>,
    contentType: string | undefined,
    data: Buffer,
    q: URLSearchParams,
    goog: string | string[] | undefined,
  ): Reply {
    checkPreconditions(b.objects.get(name), q);
    const md5Hash = md5Base64(data);
    const crc = crc32cBase64(data);
    // Like GCS: a checksum the client declares (header or resource) must match what arrived.
    const declared = parseGoogHash(Array.isArray(goog) ? goog.join(',') : goog);
    if (typeof resource.crc32c === 'string') declared.crc32c ??= resource.crc32c;
    if (typeof resource.md5Hash === 'string') declared.md5 ??= resource.md5Hash;
    if (declared.crc32c !== undefined && declared.crc32c !== crc) {
      throw new HttpError(400, `Provided CRC32C "${declared.crc32c}" doesn't match calculated CRC32C "${crc}".`);
    }
    if (declared.md5 !== undefined && declared.md5 !== md5Hash) {
      throw new HttpError(400, `Provided MD5 hash "${declared.md5}" doesn't match calculated MD5 hash "${md5Hash}".`);
    }
    const now = new Date().toISOString();
    const metadata: Record<string, string> = {};
    if (isRecord(resource.metadata)) {
      for (const [k, v] of Object.entries(resource.metadata)) if (v !== null && v !== undefined) metadata[k] = String(v);
    }
    const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
    const o: StoredObject = {
      name,
      data,
      generation: this.nextGeneration(),
      metageneration: 1,
      contentType: str(resource.contentType) ?? str(contentType) ?? 'application/octet-stream',
      contentEncoding: str(resource.contentEncoding),
      cacheControl: str(resource.cacheControl),
      contentDisposition: str(resource.contentDisposition),
      contentLanguage: str(resource.contentLanguage),
      metadata,
      md5Hash,
      crc32c: crc,
      timeCreated: now,
      updated: now,
    };
    b.objects.set(name, o);
    this.stats.objectsWritten++;
    this.persistObject(b.name, o);
    return { status: 200, body: this.objectResource(b.name, o) };
  }

  private download(info: GcsRequestInfo, req: http.IncomingMessage, q: URLSearchParams): Reply {
    const o = this.existing(info, q);
    const headers: Record<string, string | number> = {
      'Content-Type': o.contentType,
      'x-goog-hash': `crc32c=${o.crc32c},md5=${o.md5Hash}`,
      'x-goog-generation': o.generation,
      'x-goog-metageneration': String(o.metageneration),
      'x-goog-stored-content-encoding': o.contentEncoding ?? 'identity',
      'x-goog-stored-content-length': o.data.length,
      ETag: `"${Buffer.from(o.md5Hash, 'base64').toString('hex')}"`,
      'Last-Modified': new Date(o.updated).toUTCString(),
    };
    let data = o.data;
    const acceptsGzip = /\bgzip\b/i.test(String(req.headers['accept-encoding'] ?? ''));
    if (o.contentEncoding === 'gzip' && !acceptsGzip) {
      // Decompressive transcoding: a client that cannot take gzip gets the plain bytes.
      data = zlib.gunzipSync(o.data);
      headers.Warning = '214 UploadServer gunzipped';
    } else if (o.contentEncoding) {
      headers['Content-Encoding'] = o.contentEncoding;
    }
    const range = /^bytes=(\d*)-(\d*)$/.exec(String(req.headers.range ?? ''));
    if (range && data === o.data && (range[1] !== '' || range[2] !== '')) {
      const size = data.length;
      let start: number;
      let end: number;
      if (range[1] === '') {
        start = Math.max(0, size - Number(range[2]));
        end = size - 1;
      } else {
        start = Number(range[1]);
        end = range[2] === '' ? size - 1 : Math.min(Number(range[2]), size - 1);
      }
      if (start >= size || start > end) {
        return { status: 416, headers: { 'Content-Range': `bytes */${size}` }, body: gcsErrorBody(416, 'The requested range cannot be satisfied.', 'requestedRangeNotSatisfiable') };
      }
      headers['Content-Range'] = `bytes ${start}-${end}/${size}`;
      return { status: 206, headers, body: data.subarray(start, end + 1) };
    }
    return { status: 200, headers, body: data };
  }

  private list(b: BucketState, q: URLSearchParams): Reply {
    const prefix = q.get('prefix') ?? '';
    const delimiter = q.get('delimiter') ?? '';
    const maxResults = Math.min(Math.max(Number(q.get('maxResults') ?? 1000) || 1000, 1), 1000);
    const startOffset = q.get('startOffset') ?? '';
    const endOffset = q.get('endOffset') ?? '';
    const token = q.get('pageToken');
    // The token names the last entry returned and whether it was a prefix (whose names are all skipped).
    let after = '';
    let afterPrefix = false;
    if (token) {
      try {
        const parsed = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as { a?: unknown; p?: unknown };
        if (typeof parsed.a !== 'string') throw new Error('bad token');
        after = parsed.a;
        afterPrefix = parsed.p === true;
      } catch {
        throw new HttpError(400, 'Invalid pageToken');
      }
    }
    const names = [...b.objects.keys()].filter((n) => n.startsWith(prefix) && n >= startOffset && (endOffset === '' || n < endOffset)).sort();
    const items: Record<string, unknown>[] = [];
    const prefixes: string[] = [];
    let count = 0;
    let last = '';
    let lastIsPrefix = false;
    let more = false;
    for (const n of names) {
      if (after !== '' && n <= after) continue;
      // Names under a prefix already returned on an earlier page are skipped whole.
      if (afterPrefix && n.startsWith(after)) continue;
      const cut = delimiter === '' ? -1 : n.indexOf(delimiter, prefix.length);
      const key = cut === -1 ? n : n.slice(0, cut + delimiter.length);
      if (cut !== -1 && prefixes[prefixes.length - 1] === key) continue;
      if (count === maxResults) {
        more = true;
        break;
      }
      if (cut === -1) items.push(this.objectResource(b.name, b.objects.get(n)!));
      else prefixes.push(key);
      count++;
      last = key;
      lastIsPrefix = cut !== -1;
    }
    const body: Record<string, unknown> = { kind: 'storage#objects' };
    if (items.length > 0) body.items = items;
    if (prefixes.length > 0) body.prefixes = prefixes;
    if (more) body.nextPageToken = Buffer.from(JSON.stringify({ a: last, p: lastIsPrefix }), 'utf8').toString('base64url');
    return { status: 200, body };
  }

  private nextGeneration(): string {
    // Microsecond timestamps like GCS, strictly increasing even within one microsecond.
    const now = BigInt(Date.now()) * 1000n;
    this.lastGeneration = now > this.lastGeneration ? now : this.lastGeneration + 1n;
    return this.lastGeneration.toString();
  }

  private bucketResource(b: BucketState): Record<string, unknown> {
    return {
      kind: 'storage#bucket',
      id: b.name,
      selfLink: `${this.url}/storage/v1/b/${b.name}`,
      projectNumber: '0',
      name: b.name,
      timeCreated: b.timeCreated,
      updated: b.timeCreated,
      metageneration: '1',
      location: 'US',
      locationType: 'multi-region',
      storageClass: 'STANDARD',
      etag: 'CAE=',
    };
  }

  private objectResource(bucket: string, o: StoredObject): Record<string, unknown> {
    const encoded = encodeURIComponent(o.name);
    const r: Record<string, unknown> = {
      kind: 'storage#object',
      id: `${bucket}/${o.name}/${o.generation}`,
      selfLink: `${this.url}/storage/v1/b/${bucket}/o/${encoded}`,
      mediaLink: `${this.url}/download/storage/v1/b/${bucket}/o/${encoded}?generation=${o.generation}&alt=media`,
      name: o.name,
      bucket,
      generation: o.generation,
      metageneration: String(o.metageneration),
      contentType: o.contentType,
      storageClass: 'STANDARD',
      size: String(o.data.length),
      md5Hash: o.md5Hash,
      crc32c: o.crc32c,
      etag: Buffer.from(`${o.generation}/${o.metageneration}`).toString('base64'),
      timeCreated: o.timeCreated,
      updated: o.updated,
      timeStorageClassUpdated: o.timeCreated,
    };
    if (o.contentEncoding) r.contentEncoding = o.contentEncoding;
    if (o.cacheControl) r.cacheControl = o.cacheControl;
    if (o.contentDisposition) r.contentDisposition = o.contentDisposition;
    if (o.contentLanguage) r.contentLanguage = o.contentLanguage;
    if (Object.keys(o.metadata).length > 0) r.metadata = { ...o.metadata };
    return r;
  }

  // ---- persistence (optional) ----

  private bucketDir(bucket: string): string | undefined {
    return this.options.dir ? path.join(this.options.dir, bucket) : undefined;
  }

  private objectPaths(bucket: string, name: string): { data: string; meta: string } | undefined {
    const dir = this.bucketDir(bucket);
    if (!dir) return undefined;
    const key = createHash('sha256').update(name).digest('hex');
    return { data: path.join(dir, `${key}.bin`), meta: path.join(dir, `${key}.json`) };
  }

  private persistBucket(name: string): void {
    const dir = this.bucketDir(name);
    if (!dir) return;
    fs.mkdirSync(dir, { recursive: true });
    const marker = path.join(dir, '.bucket.json');
    if (!fs.existsSync(marker)) fs.writeFileSync(marker, JSON.stringify({ name, timeCreated: this.buckets.get(name)?.timeCreated }));
  }

  private unpersistBucket(name: string): void {
    const dir = this.bucketDir(name);
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  }

  private persistObject(bucket: string, o: StoredObject): void {
    const p = this.objectPaths(bucket, o.name);
    if (!p) return;
    const { data, ...meta } = o;
    fs.writeFileSync(`${p.data}.tmp`, data);
    fs.renameSync(`${p.data}.tmp`, p.data);
    fs.writeFileSync(`${p.meta}.tmp`, JSON.stringify(meta));
    fs.renameSync(`${p.meta}.tmp`, p.meta);
  }

  private unpersistObject(bucket: string, name: string): void {
    const p = this.objectPaths(bucket, name);
    if (!p) return;
    fs.rmSync(p.meta, { force: true });
    fs.rmSync(p.data, { force: true });
  }

  private load(dir: string): void {
    fs.mkdirSync(dir, { recursive: true });
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      if (!entry.isDirectory()) continue;
      const bdir = path.join(dir, entry.name);
      const marker = path.join(bdir, '.bucket.json');
      if (!fs.existsSync(marker)) continue;
      const info = JSON.parse(fs.readFileSync(marker, 'utf8')) as { name: string; timeCreated?: string };
      const state: BucketState = { name: info.name, timeCreated: info.timeCreated ?? new Date().toISOString(), objects: new Map() };
      for (const f of fs.readdirSync(bdir)) {
        if (!f.endsWith('.json') || f.startsWith('.')) continue;
        const meta = JSON.parse(fs.readFileSync(path.join(bdir, f), 'utf8')) as Omit<StoredObject, 'data'>;
        const dataFile = path.join(bdir, f.replace(/\.json$/, '.bin'));
        if (!fs.existsSync(dataFile)) continue;
        state.objects.set(meta.name, { ...meta, data: fs.readFileSync(dataFile) });
        if (BigInt(meta.generation) > this.lastGeneration) this.lastGeneration = BigInt(meta.generation);
      }
      this.buckets.set(state.name, state);
    }
  }
}

function view(o: StoredObject): StoredObjectView {
  return {
    name: o.name,
    data: o.data,
    generation: o.generation,
    metageneration: o.metageneration,
    contentType: o.contentType,
    contentEncoding: o.contentEncoding,
    metadata: { ...o.metadata },
    md5Hash: o.md5Hash,
    crc32c: o.crc32c,
  };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function parseJson(body: Buffer): Record<string, unknown> {
  if (body.length === 0) return {};
  try {
    const parsed: unknown = JSON.parse(body.toString('utf8'));
    if (isRecord(parsed)) return parsed;
  } catch {
    // fall through
  }
  throw new HttpError(400, 'Invalid JSON payload received.', 'parseError');
}

function parseGoogHash(header: string | undefined): { crc32c?: string; md5?: string } {
  const out: { crc32c?: string; md5?: string } = {};
  for (const pair of (header ?? '').split(',')) {
    const eq = pair.indexOf('=');
    if (eq === -1) continue;
    const key = pair.slice(0, eq).trim().toLowerCase();
    const value = pair.slice(eq + 1).trim();
    if (key === 'crc32c') out.crc32c = value;
    if (key === 'md5') out.md5 = value;
  }
  return out;
}

function checkPreconditions(o: StoredObject | undefined, q: URLSearchParams): void {
  const fail = (): never => {
    throw new HttpError(412, 'At least one of the pre-conditions you specified did not hold.', 'conditionNotMet');
  };
  const gm = q.get('ifGenerationMatch');
  if (gm !== null) {
    if (gm === '0' ? o !== undefined : o?.generation !== gm) fail();
  }
  const gnm = q.get('ifGenerationNotMatch');
  if (gnm !== null && (gnm === '0' ? o === undefined : o?.generation === gnm)) fail();
  const mm = q.get('ifMetagenerationMatch');
  if (mm !== null && String(o?.metageneration) !== mm) fail();
  const mnm = q.get('ifMetagenerationNotMatch');
  if (mnm !== null && o !== undefined && String(o.metageneration) === mnm) fail();
}

function matches(match: FaultMatch | undefined, info: GcsRequestInfo): boolean {
  if (!match) return true;
  if (match.op !== undefined) {
    const ops = Array.isArray(match.op) ? match.op : [match.op];
    if (!ops.some((op) => info.op === op || info.op.startsWith(`${op}.`))) return false;
  }
  if (match.method !== undefined && match.method.toUpperCase() !== info.method) return false;
  if (match.bucket !== undefined && match.bucket !== info.bucket) return false;
  if (match.object !== undefined) {
    if (info.object === undefined) return false;
    if (typeof match.object === 'string' ? match.object !== info.object : !match.object.test(info.object)) return false;
  }
  return match.when ? match.when(info) : true;
}

/** Works out which API call a request is, from its method and path (`/storage/v1` prefix optional). */
export function classify(method: string, url: URL, contentRange?: string): GcsRequestInfo {
  const info: GcsRequestInfo = { op: 'unknown', method: method.toUpperCase(), path: url.pathname, query: url.searchParams };
  let p = url.pathname;
  let kind: 'json' | 'upload' | 'download' = 'json';
  if (p.startsWith('/upload/storage/v1/')) {
    kind = 'upload';
    p = p.slice('/upload/storage/v1'.length);
  } else if (p.startsWith('/download/storage/v1/')) {
    kind = 'download';
    p = p.slice('/download/storage/v1'.length);
  } else if (p.startsWith('/storage/v1/') || p === '/storage/v1') {
    p = p.slice('/storage/v1'.length);
  }
  const m = /^\/b(?:\/([^/]+)(?:\/o(?:\/(.+))?)?)?\/?$/.exec(p);
  if (!m) return info;
  const decode = (s: string): string => {
    try {
      return decodeURIComponent(s);
    } catch {
      return s;
    }
  };
  const bucket = m[1] === undefined ? undefined : decode(m[1]);
  const object = m[2] === undefined ? undefined : decode(m[2]);
  const hasObjects = /^\/b\/[^/]+\/o(\/|$)/.test(p);
  info.bucket = bucket;
  info.object = object;
  const M = info.method;
  if (kind === 'upload') {
    const type = url.searchParams.get('uploadType');
    if (!hasObjects || object !== undefined) return info;
    if (M === 'POST' && type === 'media') info.op = 'upload.media';
    else if (M === 'POST' && (type === 'multipart' || type === null)) info.op = 'upload.multipart';
    else if (M === 'POST' && type === 'resumable') info.op = 'upload.resumable.start';
    else if (M === 'PUT' && url.searchParams.has('upload_id')) {
      // A status query is a PUT with `Content-Range: bytes */N` (or `*/*`) and no body.
      info.op = /^bytes\s+\*\//.test(contentRange ?? '') ? 'upload.resumable.status' : 'upload.resumable.chunk';
    }
    return info;
  }
  if (kind === 'download') {
    if (object !== undefined && M === 'GET') info.op = 'object.download';
    return info;
  }
  if (bucket === undefined) {
    if (M === 'GET') info.op = 'bucket.list';
    else if (M === 'POST') info.op = 'bucket.insert';
    return info;
  }
  if (!hasObjects) {
    if (M === 'GET') info.op = 'bucket.get';
    else if (M === 'DELETE') info.op = 'bucket.delete';
    return info;
  }
  if (object === undefined) {
    if (M === 'GET') info.op = 'object.list';
    else if (M === 'POST') info.op = 'upload.multipart';
    return info;
  }
  if (M === 'GET') info.op = url.searchParams.get('alt') === 'media' ? 'object.download' : 'object.get';
  else if (M === 'PATCH' || M === 'PUT') info.op = 'object.patch';
  else if (M === 'DELETE') info.op = 'object.delete';
  return info;
}

/** Creates and starts a server; `await server.stop()` when done. */
export async function startGcsServer(options: GcsServerOptions = {}): Promise<GcsTestServer> {
  const server = new GcsTestServer(options);
  await server.start();
  return server;
}
