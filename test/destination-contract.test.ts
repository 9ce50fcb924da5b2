/**
 * One contract, every destination: the same cases run against the local directory and against GCS
 * (the test server, through GcsDestination and the real client). The shipper and the consumer rely
 * on exactly these behaviours, whatever the destination.
 */
import * as zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalDirDestination, type Destination, type ObjectInfo } from 'metering-ledger/sink';
import { GcsDestination } from 'metering-ledger/sink/gcs';
import { GcsTestServer, startGcsServer } from './support/gcs-server.js';
import { tempDir } from './support/tmp.js';

interface Subject {
  label: string;
  /** A fresh, empty destination per test. */
  make: () => Destination;
  setup: () => Promise<void>;
  teardown: () => Promise<void>;
}

let server: GcsTestServer | undefined;
let bucketCounter = 0;
const dirs: (() => void)[] = [];

const subjects: Subject[] = [
  {
    label: 'LocalDirDestination',
    make: () => {
      const t = tempDir('contract');
      dirs.push(t.cleanup);
      return new LocalDirDestination(t.dir);
    },
    setup: async () => {},
    teardown: async () => {
      for (const cleanup of dirs.splice(0)) cleanup();
    },
  },
  {
    label: 'GcsDestination',
    make: () => {
      const bucket = `contract-${++bucketCounter}`;
      server!.createBucket(bucket);
      // A small list page so every list crosses page boundaries.
      return new GcsDestination(bucket, { endpoint: server!.url, listPageSize: 3, maxRetryDelaySeconds: 1 });
    },
    setup: async () => {
      server = await startGcsServer();
    },
    teardown: async () => {
      await server?.stop();
    },
  },
];

async function collect(it: AsyncIterable<ObjectInfo>): Promise<ObjectInfo[]> {
  const out: ObjectInfo[] = [];
  for await (const o of it) out.push(o);
  return out;
}

describe.each(subjects)('Destination contract: $label', (subject) => {
  beforeAll(() => subject.setup());
  afterAll(() => subject.teardown());

  it('putIfAbsent creates once; a second call says exists and changes nothing', async () => {
    const d = subject.make();
    const name = 'p/ledger/node=n1/dt=2026-01-01/seg.000-100.ndjson';
    expect(await d.putIfAbsent(name, Buffer.from('first\n'), { contentType: 'application/x-ndjson', metadata: { lines: '1', range: '0-6' } })).toBe('created');
    expect(await d.putIfAbsent(name, Buffer.from('second, longer\n'), { metadata: { lines: '9' } })).toBe('exists');
    expect((await d.get(name))?.toString()).toBe('first\n');
    expect(await d.head(name)).toEqual({ name, size: 6, metadata: { lines: '1', range: '0-6' }, updated: expect.any(Number) });
  });

  it('put replaces bytes and metadata', async () => {
    const d = subject.make();
    await d.put('p/nodes/n1.json', Buffer.from('{"v":1}'), { contentType: 'application/json', metadata: { a: '1' } });
    await d.put('p/nodes/n1.json', Buffer.from('{"v":22}'), { contentType: 'application/json', metadata: { b: '2' } });
    expect((await d.get('p/nodes/n1.json'))?.toString()).toBe('{"v":22}');
    expect(await d.head('p/nodes/n1.json')).toEqual({ name: 'p/nodes/n1.json', size: 8, metadata: { b: '2' }, updated: expect.any(Number) });
  });

  it("gives the destination's own time of an object's last write (what the consumer trusts)", async () => {
    const d = subject.make();
    const before = Date.now();
    await d.put('p/nodes/clock.json', Buffer.from('{}'));
    const after = Date.now();
    const listed = (await collect(d.list('p/nodes/'))).find((o) => o.name === 'p/nodes/clock.json')!;
    const head = await d.head('p/nodes/clock.json');
    for (const updated of [listed.updated, head?.updated]) {
      expect(updated).toBeGreaterThanOrEqual(before - 1000);
      expect(updated).toBeLessThanOrEqual(after + 1000);
      expect(Number.isInteger(updated)).toBe(true);
    }
  });

  it('get and head answer undefined for a missing object; delete is idempotent', async () => {
    const d = subject.make();
    expect(await d.get('nope/x')).toBeUndefined();
    expect(await d.head('nope/x')).toBeUndefined();
    await d.putIfAbsent('del/x', Buffer.from('x'));
    await d.delete('del/x');
    expect(await d.get('del/x')).toBeUndefined();
    expect(await d.head('del/x')).toBeUndefined();
    await d.delete('del/x');
    // Deleted names can be created again.
    expect(await d.putIfAbsent('del/x', Buffer.from('y'))).toBe('created');
    expect((await d.get('del/x'))?.toString()).toBe('y');
  });

  it('lists by prefix in name order with sizes and metadata, across pages', async () => {
    const d = subject.make();
    const names = [
      'pre/ledger/node=a/dt=2026-01-02/s.2',
      'pre/ledger/node=a/dt=2026-01-01/s.1',
      'pre/ledger/node=b/dt=2026-01-01/s.1',
      'pre/ledger/node=ab/dt=2026-01-01/s.1',
      'pre/nodes/a.json',
      'pre/nodes/b.json',
      'pre/quarantine/node=a/dt=2026-01-01/q.1',
      'other/ledger/x',
    ];
    for (const [i, n] of names.entries()) await d.putIfAbsent(n, Buffer.alloc(i + 1, 0x61), { metadata: { i: String(i) } });
    const ledger = await collect(d.list('pre/ledger/'));
    expect(ledger.map((o) => o.name)).toEqual([
      'pre/ledger/node=a/dt=2026-01-01/s.1',
      'pre/ledger/node=a/dt=2026-01-02/s.2',
      'pre/ledger/node=ab/dt=2026-01-01/s.1',
      'pre/ledger/node=b/dt=2026-01-01/s.1',
    ]);
    expect(ledger.map((o) => [o.size, o.metadata])).toEqual([
      [2, { i: '1' }],
      [1, { i: '0' }],
      [4, { i: '3' }],
      [3, { i: '2' }],
    ]);
    // A prefix may end mid-segment: node=a matches node=ab too, as in object storage.
    expect((await collect(d.list('pre/ledger/node=a'))).length).toBe(3);
    expect((await collect(d.list('pre/ledger/node=a/'))).length).toBe(2);
    expect((await collect(d.list(''))).map((o) => o.name)).toEqual([...names].sort());
    expect(await collect(d.list('absent/'))).toEqual([]);
  });

  it('stores gzip bodies exactly as given and returns them unchanged', async () => {
    const d = subject.make();
    const plain = Buffer.from('{"kind":"vm.started"}\n'.repeat(200));
    const gz = zlib.gzipSync(plain);
    await d.putIfAbsent('gz/a.ndjson.gz', gz, { contentType: 'application/x-ndjson', contentEncoding: 'gzip', metadata: { sha256: 'x' } });
    const back = await d.get('gz/a.ndjson.gz');
    expect(back?.equals(gz)).toBe(true);
    expect(zlib.gunzipSync(back!).equals(plain)).toBe(true);
    expect((await d.head('gz/a.ndjson.gz'))?.size).toBe(gz.length);
  });

  it('handles names with spaces, unicode and URL-special characters', async () => {
    const d = subject.make();
    const name = 'odd names/dt=2026-01-01/ä b#c?d%20e+f&g=h.ndjson';
    expect(await d.putIfAbsent(name, Buffer.from('odd'), { metadata: { 'key-with-dash': 'välue' } })).toBe('created');
    expect((await d.get(name))?.toString()).toBe('odd');
    expect(await d.head(name)).toEqual({ name, size: 3, metadata: { 'key-with-dash': 'välue' }, updated: expect.any(Number) });
    expect((await collect(d.list('odd names/'))).map((o) => o.name)).toEqual([name]);
    expect(await d.putIfAbsent(name, Buffer.from('other'))).toBe('exists');
    await d.delete(name);
    expect(await d.head(name)).toBeUndefined();
  });

  it('keeps empty and binary bodies byte-exact', async () => {
    const d = subject.make();
    const binary = Buffer.from(Array.from({ length: 512 }, (_, i) => i % 256));
    await d.putIfAbsent('bin/empty', Buffer.alloc(0));
    await d.putIfAbsent('bin/all-bytes', binary);
    expect((await d.get('bin/empty'))?.length).toBe(0);
    expect((await d.head('bin/empty'))?.size).toBe(0);
    expect((await d.get('bin/all-bytes'))?.equals(binary)).toBe(true);
  });

  it('lets exactly one of several concurrent putIfAbsent calls create the object', async () => {
    const d = subject.make();
    const bodies = Array.from({ length: 6 }, (_, i) => Buffer.from(`writer ${i}\n`));
    const results = await Promise.all(bodies.map((b, i) => d.putIfAbsent('race/obj', b, { metadata: { writer: String(i) } })));
    expect(results.filter((r) => r === 'created').length).toBe(1);
    const winner = results.indexOf('created');
    expect((await d.get('race/obj'))?.equals(bodies[winner]!)).toBe(true);
  });

  it('keeps the winning putIfAbsent call\'s metadata with its bytes', async () => {
    const d = subject.make();
    const bodies = Array.from({ length: 6 }, (_, i) => Buffer.from(`writer ${i}\n`));
    const results = await Promise.all(bodies.map((b, i) => d.putIfAbsent('race/meta', b, { metadata: { writer: String(i) } })));
    const winner = results.indexOf('created');
    expect((await d.get('race/meta'))?.toString()).toBe(`writer ${winner}\n`);
    expect((await d.head('race/meta'))?.metadata).toEqual({ writer: String(winner) });
  });
});
