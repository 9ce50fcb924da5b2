/**
 * The GCS test server's fidelity, proven by driving it only through the real @google-cloud/storage
 * client, and GcsDestination's behaviour under faults (statuses, resets, lost responses, refusals).
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as zlib from 'node:zlib';
import { IdempotencyStrategy, Storage } from '@google-cloud/storage';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { PermanentDestinationError, openDestination } from 'metering-ledger/sink';
import { GcsDestination, GcsRequestError, gcsErrorStatus, gcsFromUrl } from 'metering-ledger/sink/gcs';
import { GcsTestServer, startGcsServer } from './support/gcs-server.js';
import { tempDir } from './support/tmp.js';

const BUCKET = 'ledger-bucket';
let server: GcsTestServer;

function client(): Storage {
  return new Storage({
    apiEndpoint: server.url,
    projectId: 'test',
    useAuthWithCustomEndpoint: false,
    // Fast client retries; RetryAlways so an unconditional save does not switch retries off for the client.
    retryOptions: { maxRetries: 3, retryDelayMultiplier: 1.1, maxRetryDelay: 1, totalTimeout: 30, idempotencyStrategy: IdempotencyStrategy.RetryAlways },
  });
}

function destination(extra: ConstructorParameters<typeof GcsDestination>[1] = {}, bucket = BUCKET): GcsDestination {
  return new GcsDestination(bucket, { endpoint: server.url, maxRetryDelaySeconds: 1, ...extra });
}

function patterned(size: number, seed: number): Buffer {
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i++) b[i] = (i * 31 + seed * 7 + (i >> 9)) & 0xff;
  return b;
}

const md5 = (b: Buffer): string => createHash('md5').update(b).digest('base64');

beforeAll(async () => {
  server = await startGcsServer({ buckets: [BUCKET] });
});

afterAll(async () => {
  await server.stop();
});

afterEach(() => {
  server.clearFaults();
});

describe('GCS test server, through the real client', () => {
  it('round-trips a small upload byte-exact with content type, custom metadata and checksums', async () => {
    const bucket = client().bucket(BUCKET);
    const body = Buffer.from('{"a":1}\n{"b":"é"}\n');
    const file = bucket.file('small/one line.ndjson');
    await file.save(body, { resumable: false, metadata: { contentType: 'application/x-ndjson', metadata: { lines: '2', range: '0-20' } } });
    const [meta] = await file.getMetadata();
    expect(meta.name).toBe('small/one line.ndjson');
    expect(Number(meta.size)).toBe(body.length);
    expect(meta.contentType).toBe('application/x-ndjson');
    expect(meta.metadata).toEqual({ lines: '2', range: '0-20' });
    expect(meta.md5Hash).toBe(md5(body));
    expect(Number(meta.generation)).toBeGreaterThan(0);
    expect(meta.metageneration).toBe('1');
    const [data] = await file.download();
    expect(data.equals(body)).toBe(true);
    // md5 validation needs the md5 in x-goog-hash: the client refuses the download without it.
    const [viaMd5] = await file.download({ validation: 'md5' });
    expect(viaMd5.equals(body)).toBe(true);
  });

  it('round-trips a large resumable upload sent in several chunks, and one sent as a single request', async () => {
    const bucket = client().bucket(BUCKET);
    const big = patterned(9 * 1024 * 1024 + 4321, 1);
    const chunksBefore = server.stats.byOp['upload.resumable.chunk'] ?? 0;
    await bucket.file('large/chunked.bin').save(big, { resumable: true, chunkSize: 1024 * 1024, preconditionOpts: { ifGenerationMatch: 0 } });
    expect((server.stats.byOp['upload.resumable.chunk'] ?? 0) - chunksBefore).toBe(10);
    const [back] = await bucket.file('large/chunked.bin').download();
    expect(back.length).toBe(big.length);
    expect(back.equals(big)).toBe(true);

    await bucket.file('large/single.bin').save(big, { resumable: true });
    const [single] = await bucket.file('large/single.bin').download();
    expect(single.equals(big)).toBe(true);
  });

  it('resumes a chunked upload after a connection dropped mid-chunk', async () => {
    const bucket = client().bucket(BUCKET);
    const body = patterned(3 * 1024 * 1024 + 17, 2);
    // The third chunk request dies after 100 KiB of its body: the client asks for the status and resends.
    let seen = 0;
    server.injectFault({ match: { op: 'upload.resumable.chunk', when: () => ++seen === 3 }, action: { type: 'drop', afterBodyBytes: 100 * 1024 } });
    const statusBefore = server.stats.byOp['upload.resumable.status'] ?? 0;
    await bucket.file('large/resumed.bin').save(body, { resumable: true, chunkSize: 1024 * 1024, preconditionOpts: { ifGenerationMatch: 0 } });
    expect(server.stats.byOp['upload.resumable.status'] ?? 0).toBeGreaterThan(statusBefore);
    const [back] = await bucket.file('large/resumed.bin').download();
    expect(back.equals(body)).toBe(true);
  });

  it('stores gzip bodies as uploaded: raw download gives the gzip bytes, the default download decompresses', async () => {
    const bucket = client().bucket(BUCKET);
    const plain = Buffer.from('{"line":1}\n'.repeat(500));
    const gz = zlib.gzipSync(plain);
    const file = bucket.file('gz/a.ndjson.gz');
    await file.save(gz, { resumable: false, metadata: { contentType: 'application/x-ndjson', contentEncoding: 'gzip' } });
    const [meta] = await file.getMetadata();
    expect(meta.contentEncoding).toBe('gzip');
    expect(Number(meta.size)).toBe(gz.length);
    const [raw] = await file.download({ decompress: false });
    expect(raw.equals(gz)).toBe(true);
    const [decompressed] = await file.download();
    expect(decompressed.equals(plain)).toBe(true);
  });

  it('lists with prefix, delimiter and page tokens', async () => {
    const bucket = client().bucket(BUCKET);
    const names: string[] = [];
    for (let i = 0; i < 12; i++) names.push(`list/dt=2026-01-0${(i % 3) + 1}/obj-${String(i).padStart(2, '0')}`);
    names.push('list/top-level');
    names.push('listing-not-under-prefix');
    await Promise.all(names.map((n) => bucket.file(n).save(Buffer.from(n), { resumable: false })));

    const pages: string[][] = [];
    let query: { pageToken?: string } | null | undefined = {};
    while (query) {
      const [files, next]: [Array<{ name: string }>, { pageToken?: string } | null | undefined, unknown] = await bucket.getFiles({ prefix: 'list/', maxResults: 5, autoPaginate: false, ...query });
      pages.push(files.map((f) => f.name));
      query = next?.pageToken ? next : undefined;
    }
    expect(pages.map((p) => p.length)).toEqual([5, 5, 3]);
    const expected = names.filter((n) => n.startsWith('list/')).sort();
    expect(pages.flat()).toEqual(expected);

    const [all] = await bucket.getFiles({ prefix: 'list/' });
    expect(all.map((f) => f.name)).toEqual(expected);

    // With a delimiter, "directories" come back as prefixes, paged together with objects.
    const collected: { items: string[]; prefixes: string[] } = { items: [], prefixes: [] };
    let token: string | undefined;
    do {
      const [files, next, resp] = (await bucket.getFiles({ prefix: 'list/', delimiter: '/', maxResults: 2, autoPaginate: false, ...(token ? { pageToken: token } : {}) })) as unknown as [
        Array<{ name: string }>,
        { pageToken?: string } | null,
        { prefixes?: string[] },
      ];
      collected.items.push(...files.map((f) => f.name));
      collected.prefixes.push(...(resp.prefixes ?? []));
      token = next?.pageToken;
    } while (token);
    expect(collected.items).toEqual(['list/top-level']);
    expect(collected.prefixes).toEqual(['list/dt=2026-01-01/', 'list/dt=2026-01-02/', 'list/dt=2026-01-03/']);
  });

  it('honours generation preconditions: create-only fails with 412 and leaves the object alone', async () => {
    const bucket = client().bucket(BUCKET);
    const file = bucket.file('pre/create-only');
    await file.save('first', { resumable: false, preconditionOpts: { ifGenerationMatch: 0 } });
    const [before] = await file.getMetadata();
    const err = await file.save('second', { resumable: false, preconditionOpts: { ifGenerationMatch: 0 } }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(gcsErrorStatus(err)).toBe(412);
    // The resumable path checks the precondition too.
    const err2 = await file.save('third', { resumable: true, preconditionOpts: { ifGenerationMatch: 0 } }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(gcsErrorStatus(err2)).toBe(412);
    const [after] = await file.getMetadata();
    expect(after.generation).toBe(before.generation);
    expect((await file.download())[0].toString()).toBe('first');

    // Replacing with the right generation works and bumps the generation.
    await file.save('replaced', { resumable: false, preconditionOpts: { ifGenerationMatch: Number(before.generation) } });
    const [replaced] = await file.getMetadata();
    expect(BigInt(replaced.generation!)).toBeGreaterThan(BigInt(before.generation!));
    expect((await file.download())[0].toString()).toBe('replaced');

    // setMetadata bumps the metageneration, not the generation.
    await file.setMetadata({ metadata: { k: 'v' } });
    const [patched] = await file.getMetadata();
    expect(patched.metageneration).toBe('2');
    expect(patched.generation).toBe(replaced.generation);
    expect(patched.metadata).toEqual({ k: 'v' });
  });

  it('deletes, and answers 404 for missing objects and buckets', async () => {
    const storage = client();
    const file = storage.bucket(BUCKET).file('del/x');
    await file.save('x', { resumable: false });
    expect((await file.exists())[0]).toBe(true);
    await file.delete();
    expect((await file.exists())[0]).toBe(false);
    expect(gcsErrorStatus(await file.delete().then(() => undefined, (e: unknown) => e))).toBe(404);
    expect((await storage.bucket(BUCKET).exists())[0]).toBe(true);
    expect((await storage.bucket('no-such-bucket').exists())[0]).toBe(false);
    const err = await storage.bucket('no-such-bucket').file('x').save('x', { resumable: false }).then(() => undefined, (e: unknown) => e);
    expect(gcsErrorStatus(err)).toBe(404);
    await storage.createBucket('made-by-client');
    expect((await storage.bucket('made-by-client').exists())[0]).toBe(true);
  });

  it('works through STORAGE_EMULATOR_HOST without credentials', async () => {
    const saved = process.env.STORAGE_EMULATOR_HOST;
    process.env.STORAGE_EMULATOR_HOST = server.url;
    try {
      const { destination, prefix } = await openDestination(`gs://${BUCKET}/env/prefix/`);
      expect(prefix).toBe('env/prefix');
      expect(await destination.putIfAbsent(`${prefix}/a`, Buffer.from('via env'))).toBe('created');
      expect((await destination.get(`${prefix}/a`))?.toString()).toBe('via env');
      expect(destination.description).toContain(`gs://${BUCKET}`);
    } finally {
      if (saved === undefined) delete process.env.STORAGE_EMULATOR_HOST;
      else process.env.STORAGE_EMULATOR_HOST = saved;
    }
  });
});

describe('GcsDestination under faults', () => {
  it('maps 403 to PermanentDestinationError naming the bucket and the fix', async () => {
    const dest = destination();
    server.failNext(Infinity, 403, { op: 'upload' });
    const err = await dest.putIfAbsent('perm/x', Buffer.from('x')).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(PermanentDestinationError);
    const p = err as PermanentDestinationError;
    expect(p.status).toBe(403);
    expect(p.message).toContain(BUCKET);
    expect(p.hint).toContain(BUCKET);
    expect(p.hint).toMatch(/roles\/storage\.objectAdmin/);
    expect(p.hint).toMatch(/GOOGLE_APPLICATION_CREDENTIALS/);
    // 403 is not retried by the client: one request only.
    expect(server.requestLog.filter((r) => r.object === undefined && r.op.startsWith('upload') && r.status === 403).length).toBe(1);
    server.clearFaults();
    expect(await dest.putIfAbsent('perm/x', Buffer.from('x'))).toBe('created');
  });

  it('maps a missing bucket to PermanentDestinationError for uploads, reads and lists', async () => {
    const dest = destination({}, 'missing-bucket');
    for (const attempt of [
      () => dest.putIfAbsent('a', Buffer.from('x')),
      () => dest.put('a', Buffer.from('x')),
      () => dest.head('a'),
      () => dest.get('a'),
      async () => {
        for await (const _ of dest.list('')) void _;
      },
    ]) {
      const err = await attempt().then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(PermanentDestinationError);
      expect((err as PermanentDestinationError).message).toContain('bucket missing-bucket does not exist');
      expect((err as PermanentDestinationError).hint).toContain('gs://missing-bucket');
    }
  });

  it('rides out a few 503/429 answers with client retries', async () => {
    const dest = destination();
    server.failNext(1, 503, { op: 'upload' });
    server.failNext(1, 429, { op: 'upload' });
    expect(await dest.putIfAbsent('retry/a', Buffer.from('payload'))).toBe('created');
    server.failNext(1, 503, { op: 'object.get' });
    expect((await dest.head('retry/a'))?.size).toBe(7);
    server.failNext(1, 500, { op: 'object.download' });
    expect((await dest.get('retry/a'))?.toString()).toBe('payload');
  });

  it('surfaces retryable errors with their status when client retries are off', async () => {
    const dest = destination({ clientRetries: 0 });
    server.failNext(1, 503, { op: 'upload' });
    const err = await dest.putIfAbsent('noretry/a', Buffer.from('x')).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(GcsRequestError);
    expect(err).not.toBeInstanceOf(PermanentDestinationError);
    expect((err as GcsRequestError).status).toBe(503);
    expect(await dest.putIfAbsent('noretry/a', Buffer.from('x'))).toBe('created');
  });

  it('recovers from a connection reset mid-upload', async () => {
    const dest = destination();
    const body = randomBytes(64 * 1024);
    server.dropNext(1, { op: 'upload' }, 1000);
    expect(await dest.putIfAbsent('reset/a', body)).toBe('created');
    expect((await dest.get('reset/a'))?.equals(body)).toBe(true);
    // A large body (resumable, several chunks) survives a reset on one chunk as well.
    const big = patterned(2 * 1024 * 1024 + 5, 3);
    const bigDest = destination({ resumableThreshold: 1024 * 1024, chunkSize: 512 * 1024 });
    let n = 0;
    server.injectFault({ match: { op: 'upload.resumable.chunk', when: () => ++n === 2 }, action: { type: 'drop', afterBodyBytes: 4096 } });
    expect(await bigDest.putIfAbsent('reset/big', big)).toBe('created');
    expect((await bigDest.get('reset/big'))?.equals(big)).toBe(true);
  });

  it('reports "exists" when an upload was stored but its answer was lost: no duplicate, bytes unchanged', async () => {
    const dest = destination();
    const body = Buffer.from('{"seq":1}\n{"seq":2}\n');
    const writtenBefore = server.stats.objectsWritten;
    server.dropResponseNext(1, { op: 'upload' });
    expect(await dest.putIfAbsent('lost/a', body, { metadata: { lines: '2' } })).toBe('exists');
    expect(server.stats.objectsWritten - writtenBefore).toBe(1);
    expect((await dest.get('lost/a'))?.equals(body)).toBe(true);
    expect((await dest.head('lost/a'))?.metadata).toEqual({ lines: '2' });

    // Resumable: the final chunk is stored, its answer lost. The client asks the session for its status,
    // is told "complete" (200, as GCS does), gives up with a RangeError; the destination then tries a
    // fresh create-only upload, which gets 412: 'exists'.
    const big = patterned(1024 * 1024 + 99, 4);
    const bigDest = destination({ resumableThreshold: 512 * 1024, chunkSize: 512 * 1024 });
    const before = server.stats.objectsWritten;
    let lostFinal = 0;
    server.injectFault({ match: { op: 'upload.resumable.chunk', when: (r) => r.query.has('upload_id') && ++lostFinal === 3 }, action: { type: 'dropAfterHandling' } });
    expect(await bigDest.putIfAbsent('lost/big', big)).toBe('exists');
    expect(server.stats.objectsWritten - before).toBe(1);
    expect((await bigDest.get('lost/big'))?.equals(big)).toBe(true);
  });

  it('fails with a retryable error while connections are refused, and works once they are accepted again', async () => {
    const dest = destination({ clientRetries: 0 });
    await server.refuseConnections();
    try {
      const err = await dest.putIfAbsent('refused/a', Buffer.from('x')).then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(GcsRequestError);
      expect(err).not.toBeInstanceOf(PermanentDestinationError);
      // A kept-alive socket the server killed shows up as EPIPE/ECONNRESET; a fresh one is refused.
      expect((err as GcsRequestError).status).toBeUndefined();
      expect(['ECONNREFUSED', 'EPIPE', 'ECONNRESET']).toContain((err as GcsRequestError).code);
      const again = await dest.head('refused/a').then(() => undefined, (e: unknown) => e);
      expect(again).toBeInstanceOf(GcsRequestError);
      expect((again as GcsRequestError).code).toBe('ECONNREFUSED');
    } finally {
      await server.acceptConnections();
    }
    expect(await dest.putIfAbsent('refused/a', Buffer.from('x'))).toBe('created');
  });

  it('times out a hung request with a retryable error; the late-stored upload then reads as exists', async () => {
    const dest = destination({ clientRetries: 0, requestTimeoutMs: 300 });
    server.delayNext(1, 1000, { op: 'upload' });
    const err = await dest.putIfAbsent('slow/a', Buffer.from('late')).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(GcsRequestError);
    expect((err as GcsRequestError).code).toBe('ETIMEDOUT');
    // The server finishes the delayed request after the client gave up: the object lands anyway.
    await new Promise((r) => setTimeout(r, 1000));
    expect(await dest.putIfAbsent('slow/a', Buffer.from('late'))).toBe('exists');
    expect((await dest.get('slow/a'))?.toString()).toBe('late');
    // Resumable requests time out too.
    const big = destination({ clientRetries: 0, requestTimeoutMs: 300, resumableThreshold: 1024, chunkSize: 256 * 1024 });
    server.delayNext(1, 1000, { op: 'upload.resumable.chunk' });
    const err2 = await big.putIfAbsent('slow/big', Buffer.alloc(300 * 1024, 7)).then(() => undefined, (e: unknown) => e);
    expect((err2 as GcsRequestError).code).toBe('ETIMEDOUT');
  });

  it('keeps error messages free of credentials and session ids', async () => {
    const dest = destination({ clientRetries: 0, requestTimeoutMs: 300, resumableThreshold: 1024, chunkSize: 256 * 1024 });
    server.delayNext(1, 1000, { op: 'upload.resumable.chunk' });
    const err = (await dest.putIfAbsent('secret/big', Buffer.alloc(300 * 1024, 7)).then(() => undefined, (e: unknown) => e)) as Error;
    expect(err.message).not.toMatch(/upload_id=[0-9a-f]/);
    expect(err.message).not.toMatch(/Bearer|Authorization/i);
    expect(Object.keys(err)).not.toContain('cause');
  });

  it('lets an explicit endpoint win over STORAGE_EMULATOR_HOST', async () => {
    const saved = process.env.STORAGE_EMULATOR_HOST;
    process.env.STORAGE_EMULATOR_HOST = 'http://127.0.0.1:9';
    try {
      const dest = destination();
      expect(await dest.putIfAbsent('env/explicit', Buffer.from('x'))).toBe('created');
      expect((await dest.head('env/explicit'))?.size).toBe(1);
      expect(process.env.STORAGE_EMULATOR_HOST).toBe('http://127.0.0.1:9');
    } finally {
      if (saved === undefined) delete process.env.STORAGE_EMULATOR_HOST;
      else process.env.STORAGE_EMULATOR_HOST = saved;
    }
  });

  it('reports unusable Google credentials as a PermanentDestinationError with a hint', async () => {
    const saved = { emu: process.env.STORAGE_EMULATOR_HOST, creds: process.env.GOOGLE_APPLICATION_CREDENTIALS };
    delete process.env.STORAGE_EMULATOR_HOST;
    process.env.GOOGLE_APPLICATION_CREDENTIALS = '/nonexistent/metering-key.json';
    try {
      // No endpoint: the real Google endpoint with credentials; they fail to load before any request.
      const dest = new GcsDestination(BUCKET, { clientRetries: 0 });
      for (const call of [() => dest.putIfAbsent('c/x', Buffer.from('x')), () => dest.head('c/x')]) {
        const err = await call().then(() => undefined, (e: unknown) => e);
        expect(err).toBeInstanceOf(PermanentDestinationError);
        expect((err as PermanentDestinationError).message).toContain(`gs://${BUCKET}`);
        expect((err as PermanentDestinationError).hint).toContain('GOOGLE_APPLICATION_CREDENTIALS');
      }
    } finally {
      for (const [k, v] of [['STORAGE_EMULATOR_HOST', saved.emu], ['GOOGLE_APPLICATION_CREDENTIALS', saved.creds]] as const) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });

  it('parses gs:// URLs and rejects bad ones clearly', async () => {
    const { prefix } = await gcsFromUrl(`gs://${BUCKET}`, { endpoint: server.url });
    expect(prefix).toBe('');
    await expect(gcsFromUrl('gs://UPPER/x', { endpoint: server.url })).rejects.toThrow(/invalid GCS bucket name/);
    await expect(gcsFromUrl(`gs://${BUCKET}/a/../b`, { endpoint: server.url })).rejects.toThrow(/\.\./);
    await expect(gcsFromUrl(`gs://${BUCKET}/x`, { endpoint: '127.0.0.1:4443' })).rejects.toThrow(/scheme/);
    await expect(gcsFromUrl(`gs://${BUCKET}/x`, { endpoint: 'http://user:secret@127.0.0.1:1' })).rejects.toThrow(/credentials/);
  });
});

describe('GCS test server on its own', () => {
  it('persists buckets and objects under --dir across restarts', async () => {
    const t = tempDir('gcs-persist');
    try {
      const first = await startGcsServer({ dir: t.dir, buckets: ['kept-bucket'] });
      const dest1 = new GcsDestination('kept-bucket', { endpoint: first.url });
      await dest1.putIfAbsent('a/b', Buffer.from('persisted'), { metadata: { k: 'v' } });
      await dest1.putIfAbsent('a/gone', Buffer.from('x'));
      await dest1.delete('a/gone');
      await first.stop();
      const second = await startGcsServer({ dir: t.dir });
      try {
        const dest2 = new GcsDestination('kept-bucket', { endpoint: second.url });
        expect((await dest2.get('a/b'))?.toString()).toBe('persisted');
        expect(await dest2.head('a/b')).toEqual({ name: 'a/b', size: 9, metadata: { k: 'v' }, updated: expect.any(Number) });
        expect(await dest2.head('a/gone')).toBeUndefined();
        expect(await dest2.putIfAbsent('a/b', Buffer.from('again'))).toBe('exists');
      } finally {
        await second.stop();
      }
    } finally {
      t.cleanup();
    }
  });

  it('runs as `npm run gcs-server`: prints its URL, serves the client, exits 0 on SIGTERM', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'test/support/gcs-server-cli.ts', '--bucket', 'cli-bucket'], {
      cwd: new URL('..', import.meta.url).pathname,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let out = '';
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
          if (m) resolve(m[1]!);
        });
        child.once('exit', (code) => reject(new Error(`gcs-server exited with ${code} before listening: ${out}`)));
      });
      const dest = new GcsDestination('cli-bucket', { endpoint: url });
      expect(await dest.putIfAbsent('x', Buffer.from('from the cli server'))).toBe('created');
      expect((await dest.get('x'))?.toString()).toBe('from the cli server');
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });
});
