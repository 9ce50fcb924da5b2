/**
 * Bad input: fast-check fuzzing of the ledger reader (LedgerLineSplitter fed in random chunks,
 * parseLedgerBuffer, readLedger on a file) and of the consumer (runRollup over a bucket directory
 * of fuzzed objects named with sink/layout.ts, then `metering rollup` as a process). Lines mix valid
 * entries with random bytes, invalid UTF-8, huge lines, truncated JSON, wrong types, unknown kinds,
 * a future `v` and timestamps far in the future or past. Claims: every bad line is reported at its
 * exact location, every valid line around it comes back once, nothing throws, the consumer never
 * crashes and counts exactly the valid entries.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { LedgerLineSplitter, parseLedgerBuffer, readLedger, serializeEntry, type LedgerEntry, type LedgerRecord } from 'metering-ledger';
import { nodeProgressName, objectName, runRollup } from 'metering-ledger/sink';
import { removeRoot, runConsumer, tempRoot, type FaultResult } from './support.js';

export interface BadInputParams {
  /** fast-check runs of the reader property. */
  readerRuns: number;
  /** fast-check runs of the consumer property (each builds a bucket and runs a rollup). */
  consumerRuns: number;
  seed?: number;
}

const PAIRS = [
  ['vm.compute.start', 'boot'],
  ['vm.compute.stop', 'stop-user'],
  ['vm.compute.running', 'baseline'],
  ['vm.storage.start', 'clone'],
  ['vm.storage.stop', 'vm-rm'],
  ['snap.storage.start', 'boot'],
  ['snap.storage.stop', 'snap-rm'],
] as const;
const MIN_MS = Date.UTC(2000, 0, 1);
const MAX_MS = Date.UTC(2200, 0, 1) - 1;

/** A line in a fuzzed source: its bytes (no newline) and whether a reader must accept it. */
interface Line {
  bytes: Buffer;
  good: boolean;
  id?: string;
  what: string;
}

let serial = 0;
/** A valid entry; ids and (writer, seq) are unique across the whole run so dedup never merges two. */
const entryArb = fc
  .record({
    pair: fc.constantFrom(...PAIRS),
    resource: fc.string({ minLength: 1, maxLength: 40, unit: 'grapheme' }).filter((s) => !/[\u0000-\u001f\u007f]/.test(s)),
    // Anywhere in the accepted years, edges included: the far past and the far future are valid.
    t: fc.oneof(fc.integer({ min: MIN_MS, max: MAX_MS }), fc.constantFrom(MIN_MS, MAX_MS)),
    cpu: fc.integer({ min: 0, max: 512 }),
    mem: fc.maxSafeInteger().map((n) => Math.abs(n)),
    hypervisor: fc.option(fc.constantFrom('cloud-hypervisor', 'firecracker', 'qemu'), { nil: undefined }),
  })
  .map(({ pair, resource, t, cpu, mem, hypervisor }): LedgerEntry => {
    const n = ++serial;
    const snap = pair[0].startsWith('snap.');
    return {
      v: 1,
      id: `01FUZZ${String(n).padStart(20, '0')}`,
      node: 'node-f',
      writer: `w${n % 7}`,
      seq: n,
      kind: pair[0],
      ...(snap ? { snapshot_id: resource } : { vm_id: resource }),
      reason: pair[1],
      ...(hypervisor ? { hypervisor } : {}),
      shape: { cpu, mem_bytes: mem, storage_bytes: 20 * 1024 ** 3 },
      emitted_at: new Date(t).toISOString(),
    };
  });

const goodLine = entryArb.map((e): Line => ({ bytes: Buffer.from(serializeEntry(e)), good: true, id: e.id, what: 'valid' }));

/** Rewrites one field of a valid entry into something the wire format forbids. */
const MUTATIONS: [string, (o: Record<string, unknown>) => void][] = [
  ['seq as a string', (o) => (o.seq = String(o.seq))],
  ['seq 0', (o) => (o.seq = 0)],
  ['fractional seq', (o) => (o.seq = 1.5)],
  ['negative cpu', (o) => ((o.shape as Record<string, unknown>).cpu = -1)],
  ['cpu as a string', (o) => ((o.shape as Record<string, unknown>).cpu = '2')],
  ['unsafe mem', (o) => ((o.shape as Record<string, unknown>).mem_bytes = 2 ** 60)],
  ['vm_id a number', (o) => (o.vm_id = 5)],
  ['id null', (o) => (o.id = null)],
  ['v as a string', (o) => (o.v = '1')],
  ['future v', (o) => (o.v = 2)],
  ['unknown kind', (o) => (o.kind = 'vm.gpu.start')],
  ['unknown reason', (o) => (o.reason = 'cosmic-ray')],
  ['unknown field', (o) => (o.price = 3)],
  ['emitted_at in 1970', (o) => (o.emitted_at = '1970-01-01T00:00:00.000Z')],
  ['emitted_at in 2999', (o) => (o.emitted_at = '2999-01-01T00:00:00.000Z')],
  ['emitted_at in 9999', (o) => (o.emitted_at = '9999-12-31T23:59:59.999Z')],
  ['emitted_at at the end of time', (o) => (o.emitted_at = '+275760-09-13T00:00:00.000Z')],
  ['emitted_at without ms', (o) => (o.emitted_at = '2026-11-01T00:00:00Z')],
  ['emitted_at a number', (o) => (o.emitted_at = 1_700_000_000_000)],
  ['control char in id', (o) => (o.id = 'a\u0001b')],
  ['shape missing', (o) => delete o.shape],
];

const badLine: fc.Arbitrary<Line> = fc.oneof(
  fc.uint8Array({ minLength: 1, maxLength: 300 }).map((a): Line => ({ bytes: Buffer.from(a.map((b) => (b === 0x0a ? 0x20 : b))), good: false, what: 'random bytes' })),
  entryArb.chain((e) =>
    fc.integer({ min: 1, max: serializeEntry(e).length - 1 }).map((cut): Line => ({ bytes: Buffer.from(serializeEntry(e)).subarray(0, cut), good: false, what: 'truncated JSON' })),
  ),
  entryArb.map((e): Line => {
    // Invalid UTF-8 inside a string value: a lone continuation byte.
    const text = Buffer.from(serializeEntry(e));
    const at = text.indexOf('"kind"');
    return { bytes: Buffer.concat([text.subarray(0, at), Buffer.from([0xff, 0xc3]), text.subarray(at)]), good: false, what: 'invalid UTF-8' };
  }),
  entryArb.map((e): Line => {
    const huge = { ...e, ...(e.vm_id !== undefined ? { vm_id: 'x'.repeat(70_000) } : { snapshot_id: 'x'.repeat(70_000) }) };
    return { bytes: Buffer.from(serializeEntry(huge)), good: false, what: 'huge line' };
  }),
  fc.tuple(entryArb, fc.constantFrom(...MUTATIONS)).map(([e, [what, mutate]]): Line => {
    const o = JSON.parse(serializeEntry(e)) as Record<string, unknown>;
    mutate(o);
    return { bytes: Buffer.from(JSON.stringify(o)), good: false, what };
  }),
  fc.constantFrom('null', '[]', '42', '"a string"', '{}', '{"v":1}', 'true').map((s): Line => ({ bytes: Buffer.from(s), good: false, what: 'not an entry object' })),
);

const linesArb = fc.array(fc.oneof({ weight: 3, arbitrary: goodLine }, { weight: 2, arbitrary: badLine }), { minLength: 1, maxLength: 40 });

interface Layout {
  data: Buffer;
  offsets: number[];
}

function layout(lines: Line[], tornTail?: Buffer): Layout {
  const offsets: number[] = [];
  const parts: Buffer[] = [];
  let at = 0;
  for (const l of lines) {
    offsets.push(at);
    parts.push(l.bytes, Buffer.from('\n'));
    at += l.bytes.length + 1;
  }
  if (tornTail) parts.push(tornTail);
  return { data: Buffer.concat(parts), offsets };
}

interface Verdict {
  lost: number;
  duplicated: number;
  problems: string[];
}

/** Compares records with the lines they were built from. */
function judge(lines: Line[], lay: Layout, records: LedgerRecord[], tornTail: Buffer | undefined, base = 0): Verdict {
  const problems: string[] = [];
  let lost = 0;
  let duplicated = 0;
  const byOffset = new Map<number, LedgerRecord[]>();
  for (const r of records) byOffset.set(r.offset - base, [...(byOffset.get(r.offset - base) ?? []), r]);
  const starts = new Set(lay.offsets);
  lines.forEach((l, i) => {
    const at = lay.offsets[i]!;
    const here = byOffset.get(at) ?? [];
    if (l.good) {
      const entries = here.filter((r) => r.type === 'entry');
      if (entries.length === 0) {
        lost++;
        problems.push(`valid line ${i} at ${at} not returned (${here.map((r) => (r.type === 'invalid' ? r.reason : 'entry')).join(', ')})`);
      } else if (entries.length > 1) duplicated += entries.length - 1;
      else if (entries[0]!.type === 'entry' && entries[0]!.entry.id !== l.id) problems.push(`line ${i}: wrong entry`);
    } else if (!here.some((r) => r.type === 'invalid')) {
      problems.push(`bad line ${i} (${l.what}) at ${at} not reported there`);
    } else if (here.some((r) => r.type === 'entry')) {
      problems.push(`bad line ${i} (${l.what}) at ${at} accepted as an entry`);
    }
  });
  // Nothing reported at a place no line starts, except a torn line's split tail.
  for (const [off, rs] of byOffset) {
    if (starts.has(off)) continue;
    if (tornTail && off === lay.data.length - tornTail.length) continue;
    for (const r of rs) if (r.type === 'entry') {
      duplicated++;
      problems.push(`an entry appeared at ${off}, where no line starts`);
    }
  }
  if (tornTail && !records.some((r) => r.type === 'invalid' && r.offset - base === lay.data.length - tornTail.length)) problems.push('the torn tail was not reported');
  return { lost, duplicated, problems };
}

function splitterRecords(data: Buffer, cuts: number[]): LedgerRecord[] {
  const s = new LedgerLineSplitter();
  const out: LedgerRecord[] = [];
  let from = 0;
  for (const c of [...cuts.map((x) => Math.floor(x * data.length)).sort((a, b) => a - b), data.length]) {
    s.push(data.subarray(from, c), out);
    from = c;
  }
  const tail = s.finish();
  if (tail) out.push(tail);
  return out;
}

export async function run(p: BadInputParams): Promise<FaultResult> {
  const root = tempRoot('bad-input');
  const violations: string[] = [];
  let entries = 0;
  let badLines = 0;
  let lost = 0;
  let duplicated = 0;
  let crashes = 0;
  const seed = p.seed ?? Date.now() % 2 ** 31;
  try {
    // 1. The reader, in memory and streamed in random chunks, and from a file.
    let fileRuns = 0;
    const reader = await fc.check(
      fc.asyncProperty(linesArb, fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 8 }), fc.option(entryArb, { nil: undefined }), async (lines, cuts, tornEntry) => {
        const tornTail = tornEntry ? Buffer.from(serializeEntry(tornEntry)).subarray(0, 30) : undefined;
        const lay = layout(lines, tornTail);
        entries += lines.filter((l) => l.good).length;
        badLines += lines.filter((l) => !l.good).length;
        const whole = parseLedgerBuffer(lay.data);
        const chunked = splitterRecords(lay.data, cuts);
        const v = judge(lines, lay, chunked, tornTail);
        lost += v.lost;
        duplicated += v.duplicated;
        const same = JSON.stringify(whole.map((r) => [r.type, r.offset, r.length])) === JSON.stringify(chunked.map((r) => [r.type, r.offset, r.length]));
        if (!same) v.problems.push('chunked parse differs from whole parse');
        if (fileRuns < 20) {
          fileRuns++;
          const file = path.join(root, `ledger-${fileRuns}.jsonl`);
          fs.writeFileSync(file, lay.data);
          const fromFile: LedgerRecord[] = [];
          for await (const r of readLedger(file, { includeTail: true })) fromFile.push(r);
          if (JSON.stringify(fromFile.map((r) => [r.type, r.offset, r.length])) !== JSON.stringify(whole.map((r) => [r.type, r.offset, r.length]))) v.problems.push('readLedger differs from parseLedgerBuffer');
        }
        if (v.problems.length) throw new Error(v.problems.slice(0, 3).join('; '));
      }),
      { numRuns: p.readerRuns, seed },
    );
    if (reader.failed) violations.push(`reader property failed (seed ${seed}, counterexample lines: ${JSON.stringify(reader.counterexample?.[0]?.map((l) => l.what))}): ${String(reader.errorInstance).slice(0, 400)}`);

    // 2. Raw random bytes: never throws, records tile what was consumed.
    const raw = fc.check(
      fc.property(fc.uint8Array({ maxLength: 4000 }), (bytes) => {
        const buf = Buffer.from(bytes);
        const recs = parseLedgerBuffer(buf, { maxLineBytes: 512 });
        let at = 0;
        for (const r of recs) {
          if (r.offset < at) throw new Error(`overlap at ${r.offset}`);
          at = r.offset + r.length;
        }
        if (at > buf.length) throw new Error('records run past the data');
      }),
      { numRuns: p.readerRuns, seed },
    );
    if (raw.failed) violations.push(`raw-bytes property failed (seed ${seed}): ${String(raw.errorInstance).slice(0, 300)}`);

    // 3. The consumer over a bucket of fuzzed objects: never throws, counts exactly, locates every bad line.
    let bucketN = 0;
    let lastBucket = '';
    let consumerEntries = 0;
    const consumer = await fc.check(
      fc.asyncProperty(fc.array(fc.tuple(linesArb, fc.boolean()), { minLength: 1, maxLength: 4 }), fc.uint8Array({ minLength: 1, maxLength: 2000 }), async (objects, garbage) => {
        const bucket = path.join(root, `bucket-${++bucketN}`);
        lastBucket = bucket;
        const segment = `ledger-20261101T000000000Z-${String(bucketN).padStart(8, '0').slice(-8)}.jsonl`;
        const expectBad = new Set<string>();
        let good = 0;
        let at = 0;
        const put = (name: string, body: Buffer): void => {
          fs.mkdirSync(path.dirname(path.join(bucket, name)), { recursive: true });
          fs.writeFileSync(path.join(bucket, name), body);
        };
        for (const [lines, gzip] of objects) {
          const lay = layout(lines);
          const name = objectName('', 'ledger', 'node-f', segment, at, at + lay.data.length, gzip);
          at += lay.data.length;
          put(name, gzip ? gzipSync(lay.data) : lay.data);
          lines.forEach((l, i) => (l.good ? good++ : expectBad.add(`${name}@${lay.offsets[i]}`)));
        }
        // An object of raw garbage, one that claims gzip and is not, a broken progress object, a stray file.
        const garbageName = objectName('', 'ledger', 'node-f', segment, at, at + garbage.length, false);
        put(garbageName, Buffer.from(garbage));
        const garbageInvalid = parseLedgerBuffer(Buffer.from(garbage), { includeTail: true }).filter((r) => r.type === 'invalid').length;
        const fakeGzip = objectName('', 'ledger', 'node-f', segment, at + garbage.length, at + garbage.length + 10, true);
        put(fakeGzip, Buffer.from([0x1f, 0x8b, 1, 2, 3, 4, 5, 6, 7, 8]));
        put(nodeProgressName('', 'node-f'), Buffer.from('{"v":1,"node":"node-f","reported_at":"soon"'));
        put('ledger/node=node-f/dt=2026-11-01/notes.txt', Buffer.from('hello'));
        let result;
        try {
          result = await runRollup({ source: bucket, out: path.join(bucket + '-out'), now: Date.UTC(2026, 10, 2) });
        } catch (err) {
          crashes++;
          throw new Error(`the consumer threw: ${(err as Error).stack}`);
        }
        const r = result.report;
        consumerEntries += good;
        const problems: string[] = [];
        if (r.entries_read !== good) problems.push(`entries_read ${r.entries_read}, expected ${good}`);
        if (r.duplicates !== 0) problems.push(`${r.duplicates} duplicates`);
        if (r.invalid_lines.count !== expectBad.size + garbageInvalid) problems.push(`invalid_lines ${r.invalid_lines.count}, expected ${expectBad.size + garbageInvalid}`);
        const reported = new Set(r.invalid_lines.items.map((f) => `${f.object}@${f.offset}`));
        for (const k of expectBad) if (!reported.has(k)) problems.push(`bad line ${k} not reported at its location`);
        if (!r.objects.bad.some((b) => b.object === fakeGzip)) problems.push('the broken gzip object is not reported');
        if (!r.objects.bad.some((b) => b.object === 'nodes/node-f.json')) problems.push('the broken progress object is not reported');
        if (!r.objects.unknown.includes('ledger/node=node-f/dt=2026-11-01/notes.txt')) problems.push('the stray file is not reported');
        if (problems.length) throw new Error(problems.slice(0, 4).join('; '));
      }),
      { numRuns: p.consumerRuns, seed },
    );
    if (consumer.failed) violations.push(`consumer property failed (seed ${seed}): ${String(consumer.errorInstance).slice(0, 600)}`);

    // 4. The same as a process: the CLI never crashes on such a bucket.
    const cli = await runConsumer(lastBucket, path.join(root, 'cli-out'), ['--now', '2026-11-02T00:00:00Z']);
    if (cli.exit.code !== 0) violations.push(`metering rollup exited ${cli.exit.code} on a fuzzed bucket: ${cli.exit.stderr.slice(0, 400)}`);
    return {
      scenario: 'bad input (fuzz)',
      runs: p.readerRuns * 2 + p.consumerRuns,
      entries: entries + consumerEntries,
      lost,
      duplicated,
      maxRssMb: 0,
      notes: [`seed ${seed}: ${badLines} bad lines among ${entries} valid in the reader runs, ${p.consumerRuns} fuzzed buckets through the consumer, ${crashes} crashes`],
      violations,
    };
  } finally {
    removeRoot(root);
  }
}
