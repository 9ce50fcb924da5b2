/**
 * Invariants of the rollup over random event sets (fast-check):
 *  - hourly ms per resource equals the summed overlap of its intervals with what is billed;
 *  - input order and duplication (objects, lines) do not change the output;
 *  - splitting the input over any number of runs gives the same values as one run;
 *  - with per-node clock offsets (up to ±5 s) and VMs migrating between nodes, every resource is
 *    billed its true running time within the sum of the clock offsets of the events involved.
 * The properties are stated on the reference model (test/reference/); every run goes through the
 * twin (test/support/twin.ts), so the engine runs the same random fleets on exactly what the
 * reference saw and must return identical intervals, hourly rows, revisions and report.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import type { LedgerEntry } from 'metering-ledger';
import { runRollup as runEngine } from 'metering-ledger/sink';
import { runRollup as runReference, type RollupResult } from './reference/run-rollup.js';
import { twinRollup } from './support/twin.js';
import { HOUR, MIN, T0, TestBucket, TestWriter } from './support/consumer-bucket.js';
import { tempDir } from './support/tmp.js';

const twin = twinRollup(runReference, runEngine);
const runRollup = twin.run;
afterAll(() => {
  // Every property's runs were compared (the numbers of runs below, each at least once).
  expect(twin.comparisons()).toBeGreaterThan(40 + 2 * 25 + 25 + 2 * 40 + 2 * 10);
  twin.cleanup();
});

/** Every run also runs the engine (a DuckDB database per run): the properties take minutes, not seconds. */
const TWIN_TIMEOUT_MS = 600_000;

const KINDS = ['vm.compute.start', 'vm.compute.stop', 'vm.compute.running', 'vm.storage.start', 'vm.storage.stop', 'snap.storage.start', 'snap.storage.stop'] as const;
const NOW = T0 + 12 * HOUR;

const eventArb = fc.record({
  kind: fc.constantFrom(...KINDS),
  res: fc.constantFrom('r1', 'r2', 'r3'),
  writer: fc.constantFrom('n1/a', 'n1/b', 'n2/c'),
  t: fc.integer({ min: 0, max: 10 * 60 }).map((m) => T0 + m * MIN + (m % 7) * 1000),
  cpu: fc.integer({ min: 1, max: 3 }),
});
type Ev = { kind: (typeof KINDS)[number]; res: string; writer: string; t: number; cpu: number };

/** Entries with per-writer seq in list order (deterministic ids from the inputs). */
function toEntries(events: Ev[]): LedgerEntry[] {
  const writers = new Map<string, TestWriter>();
  return events.map((e, i) => {
    const [node, w] = e.writer.split('/') as [string, string];
    if (!writers.has(e.writer)) writers.set(e.writer, new TestWriter(node, w));
    const entry = writers.get(e.writer)!.entry(e.kind, e.res, e.t, { cpu: e.cpu });
    return { ...entry, id: `id-${String(i).padStart(4, '0')}` };
  });
}

async function upload(bucket: TestBucket, entries: LedgerEntry[]): Promise<void> {
  const byNode = new Map<string, LedgerEntry[]>();
  for (const e of entries) byNode.set(e.node, [...(byNode.get(e.node) ?? []), e]);
  for (const list of byNode.values()) await bucket.put(list);
}

async function progress(bucket: TestBucket, n1Complete: number, n2Stale: boolean): Promise<void> {
  await bucket.progress('n1', n1Complete, NOW);
  await bucket.progress('n2', T0 + 11 * HOUR, n2Stale ? NOW - 8 * HOUR : NOW);
}

async function withRoot<T>(fn: (root: string) => Promise<T>): Promise<T> {
  const t = tempDir('consumer-prop');
  try {
    return await fn(t.dir);
  } finally {
    t.cleanup();
  }
}

const values = (r: RollupResult) => r.hourly.map(({ hour, family, resource_id, node, hypervisor, cpu, mem_bytes, storage_bytes, ms, final }) => ({ hour, family, resource_id, node, hypervisor, cpu, mem_bytes, storage_bytes, ms, final }));

const scenario = fc.record({
  events: fc.array(eventArb, { minLength: 1, maxLength: 30 }),
  n1Complete: fc.integer({ min: 0, max: 12 * 60 }).map((m) => T0 + m * MIN),
  n2Stale: fc.boolean(),
  graceMs: fc.constantFrom(0, 5 * MIN),
});

describe('consumer properties', () => {
  it('hourly ms per resource equals the summed billed overlap of its intervals; rows are whole ms within one hour', async () => {
    await fc.assert(
      fc.asyncProperty(scenario, async (s) =>
        withRoot(async (root) => {
          const bucket = new TestBucket(path.join(root, 'bucket'));
          await upload(bucket, toEntries(s.events));
          await progress(bucket, s.n1Complete, s.n2Stale);
          const res = await runRollup({ source: bucket.dir, now: NOW, graceMs: s.graceMs });
          const watermark = Date.parse(res.report.watermark);
          const want = new Map<string, number>();
          for (const iv of res.intervals) {
            const end = iv.end === null ? watermark : Date.parse(iv.end);
            const k = `${iv.family}/${iv.resource_id}`;
            want.set(k, (want.get(k) ?? 0) + Math.max(0, end - Date.parse(iv.start)));
          }
          const got = new Map<string, number>();
          for (const r of res.hourly) {
            expect(Number.isSafeInteger(r.ms) && r.ms > 0 && r.ms <= HOUR).toBe(true);
            expect(Date.parse(r.hour) % HOUR).toBe(0);
            expect(r.final).toBe(Date.parse(r.hour) + HOUR <= watermark);
            const k = `${r.family}/${r.resource_id}`;
            got.set(k, (got.get(k) ?? 0) + r.ms);
          }
          for (const [k, v] of want) if (v === 0) want.delete(k);
          expect(got).toEqual(want);
        }),
      ),
      { numRuns: 40 },
    );
  }, TWIN_TIMEOUT_MS);

  it('input order and duplication do not change the output', async () => {
    await fc.assert(
      fc.asyncProperty(
        scenario,
        fc.array(fc.nat(), { minLength: 30, maxLength: 30 }),
        fc.array(fc.nat({ max: 29 }), { maxLength: 10 }),
        fc.integer({ min: 1, max: 4 }),
        async (s, keys, dupIdx, pieces) =>
          withRoot(async (root) => {
            const entries = toEntries(s.events);
            const a = new TestBucket(path.join(root, 'a'));
            await upload(a, entries);
            await progress(a, s.n1Complete, s.n2Stale);
            // Same entries shuffled, some repeated, cut into several objects per node.
            const shuffled = entries.map((e, i) => ({ e, k: keys[i % keys.length]! })).sort((x, y) => x.k - y.k).map((x) => x.e);
            const withDups = [...shuffled, ...dupIdx.filter((i) => i < entries.length).map((i) => entries[i]!)];
            const b = new TestBucket(path.join(root, 'b'));
            const size = Math.ceil(withDups.length / pieces);
            for (let i = 0; i < withDups.length; i += size) await upload(b, withDups.slice(i, i + size));
            await progress(b, s.n1Complete, s.n2Stale);
            const ra = await runRollup({ source: a.dir, now: NOW, graceMs: s.graceMs });
            const rb = await runRollup({ source: b.dir, now: NOW, graceMs: s.graceMs });
            expect(rb.intervals).toEqual(ra.intervals);
            expect(rb.hourly).toEqual(ra.hourly);
            expect(rb.report.orphan_stops).toEqual(ra.report.orphan_stops);
            expect(rb.report.duplicate_starts).toEqual(ra.report.duplicate_starts);
            expect(rb.report.duplicate_stops).toEqual(ra.report.duplicate_stops);
            expect(rb.report.entries_read - rb.report.duplicates).toBe(entries.length);
          }),
      ),
      { numRuns: 25 },
    );
  }, TWIN_TIMEOUT_MS);

  it('splitting the input over any number of runs gives the same values as one run', async () => {
    await fc.assert(
      fc.asyncProperty(scenario, fc.array(fc.nat({ max: 5 }), { minLength: 30, maxLength: 30 }), async (s, runOf) =>
        withRoot(async (root) => {
          const entries = toEntries(s.events);
          const one = new TestBucket(path.join(root, 'one'));
          await upload(one, entries);
          await progress(one, s.n1Complete, s.n2Stale);
          const single = await runRollup({ source: one.dir, out: path.join(root, 'out-one'), now: NOW, graceMs: s.graceMs });

          const many = new TestBucket(path.join(root, 'many'));
          await progress(many, s.n1Complete, s.n2Stale);
          const runs = Math.max(...runOf) + 1;
          let last: RollupResult | undefined;
          for (let r = 0; r < runs; r++) {
            await upload(many, entries.filter((_, i) => runOf[i % runOf.length] === r));
            last = await runRollup({ source: many.dir, out: path.join(root, 'out-many'), now: NOW, graceMs: s.graceMs });
          }
          expect(last!.intervals).toEqual(single.intervals);
          expect(values(last!).sort(byKey)).toEqual(values(single).concat(withdrawn(last!)).sort(byKey));
          // Every change to a published final value is an explicit revision with the old value.
          for (const r of last!.hourly.filter((x) => x.version > 1)) expect(r.revises).toBe(r.version - 1);
        }),
      ),
      { numRuns: 25 },
    );
  }, TWIN_TIMEOUT_MS);
});

/** Final rows withdrawn (ms 0) by a revision: they exist only in a split run, as explicit zeros. */
function withdrawn(r: RollupResult) {
  return values(r).filter((x) => x.ms === 0);
}

function byKey(a: ReturnType<typeof values>[number], b: ReturnType<typeof values>[number]): number {
  const ka = JSON.stringify([a.hour, a.family, a.resource_id, a.node, a.hypervisor ?? '', a.cpu, a.mem_bytes, a.storage_bytes]);
  const kb = JSON.stringify([b.hour, b.family, b.resource_id, b.node, b.hypervisor ?? '', b.cpu, b.mem_bytes, b.storage_bytes]);
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}

describe('consumer properties: migrations under clock offsets', () => {
  const NODES = ['n1', 'n2', 'n3'] as const;
  const vmArb = fc.record({
    start: fc.integer({ min: 0, max: 4 * 60 }).map((m) => T0 + m * MIN),
    // Each hop moves the VM to another node a few minutes later (stop on the old, start on the new, one `now`).
    hops: fc.array(fc.record({ afterMin: fc.integer({ min: 1, max: 90 }), to: fc.constantFrom(...NODES) }), { maxLength: 4 }),
    first: fc.constantFrom(...NODES),
    runMin: fc.option(fc.integer({ min: 1, max: 120 }), { nil: undefined }),
    writerTag: fc.constantFrom('a', 'm', 'z'),
    dup: fc.boolean(),
  });
  const fleetArb = fc.record({
    offsets: fc.tuple(fc.integer({ min: -5000, max: 5000 }), fc.integer({ min: -5000, max: 5000 }), fc.integer({ min: -5000, max: 5000 })),
    vms: fc.array(vmArb, { minLength: 1, maxLength: 5 }),
    runOf: fc.array(fc.nat({ max: 3 }), { minLength: 8, maxLength: 8 }),
  });

  it('bills every VM its true running time within the summed clock offsets of its events; a split over runs equals one run', async () => {
    await fc.assert(
      fc.asyncProperty(fleetArb, async ({ offsets, vms, runOf }) =>
        withRoot(async (root) => {
          const offset = (node: string): number => offsets[NODES.indexOf(node as (typeof NODES)[number])]!;
          const writers = new Map<string, TestWriter>();
          const writer = (node: string, tag: string): TestWriter => {
            const k = `${node}/${tag}`;
            if (!writers.has(k)) writers.set(k, new TestWriter(node, `${tag}-${node}`));
            return writers.get(k)!;
          };
          const entries: LedgerEntry[] = [];
          const truth = new Map<string, { ms: number; bound: number }>();
          const end = T0 + 12 * HOUR;
          vms.forEach((vm, i) => {
            const id = `vm${i}`;
            let node: string = vm.first;
            let t = vm.start;
            // Each event's offset can move one boundary: the bound is the sum over the events involved.
            let bound = Math.abs(offset(node));
            entries.push(writer(node, vm.writerTag).start(id, t + offset(node)));
            for (const hop of vm.hops) {
              if (hop.to === node) continue;
              t += hop.afterMin * MIN;
              entries.push(writer(node, vm.writerTag).stop(id, t + offset(node)));
              bound += Math.abs(offset(node)) + Math.abs(offset(hop.to));
              node = hop.to;
              entries.push(writer(node, vm.writerTag === 'a' ? 'z' : 'a').start(id, t + offset(node)));
            }
            let stopAt = end;
            if (vm.runMin !== undefined) {
              stopAt = t + vm.runMin * MIN;
              entries.push(writer(node, vm.writerTag).stop(id, stopAt + offset(node)));
              bound += Math.abs(offset(node));
            }
            if (vm.dup) entries.push(entries[entries.length - 1]!);
            truth.set(id, { ms: stopAt - vm.start, bound });
          });
          const progress = async (b: TestBucket) => {
            for (const n of NODES) await b.progress(n, end, end);
          };
          const one = new TestBucket(path.join(root, 'one'));
          await upload(one, entries);
          await progress(one);
          const single = await runRollup({ source: one.dir, now: end, graceMs: 0 });
          expect(single.report.duplicate_starts.count).toBe(0);
          expect(single.report.orphan_stops.count).toBe(0);
          for (const [id, { ms, bound }] of truth) {
            const billed = single.hourly.filter((r) => r.resource_id === id).reduce((n, r) => n + r.ms, 0);
            expect(Math.abs(billed - ms), `${id}: billed ${billed}, true ${ms}, bound ${bound}`).toBeLessThanOrEqual(bound);
          }
          // The same entries over several runs, objects cut differently: the same intervals and values.
          const many = new TestBucket(path.join(root, 'many'));
          await progress(many);
          let last: RollupResult | undefined;
          for (let r = 0; r <= Math.max(...runOf); r++) {
            await upload(many, entries.filter((_, i) => runOf[i % runOf.length] === r));
            last = await runRollup({ source: many.dir, out: path.join(root, 'out-many'), now: end, graceMs: 0 });
          }
          expect(last!.intervals).toEqual(single.intervals);
          expect(values(last!).filter((x) => x.ms > 0).sort(byKey)).toEqual(values(single).sort(byKey));
        }),
      ),
      { numRuns: 40 },
    );
  }, TWIN_TIMEOUT_MS);

  it('conflicting copies of an id resolve to the copy at the smallest (object, offset), however the objects are split over runs', async () => {
    await fc.assert(
      fc.asyncProperty(scenario, fc.array(fc.nat({ max: 29 }), { minLength: 1, maxLength: 6 }), fc.array(fc.nat({ max: 3 }), { minLength: 12, maxLength: 12 }), async (s, forgeIdx, runOf) =>
        withRoot(async (root) => {
          const entries = toEntries(s.events);
          // Forged copies (same id, other shape) in their own objects: some sort before the originals.
          const forged = forgeIdx.filter((i) => i < entries.length).map((i) => ({ ...entries[i]!, shape: { ...entries[i]!.shape, cpu: entries[i]!.shape.cpu + 10 } }));
          const staging = new TestBucket(path.join(root, 'staging'));
          await upload(staging, entries);
          for (const [k, f] of forged.entries()) await staging.put([f], { segment: staging.segment(k % 2 === 0 ? T0 - HOUR : T0 + HOUR) });
          const names = (await listNames(staging.dir)).filter((n) => n.startsWith('ledger/'));
          const copyInto = (dir: string, which: string[]) => {
            for (const n of which) {
              fs.mkdirSync(path.dirname(path.join(dir, n)), { recursive: true });
              fs.copyFileSync(path.join(staging.dir, n), path.join(dir, n));
            }
          };
          const one = new TestBucket(path.join(root, 'one'));
          copyInto(one.dir, names);
          await progress(one, s.n1Complete, s.n2Stale);
          const single = await runRollup({ source: one.dir, now: NOW, graceMs: s.graceMs });
          const many = new TestBucket(path.join(root, 'many'));
          await progress(many, s.n1Complete, s.n2Stale);
          let last: RollupResult | undefined;
          for (let r = 0; r <= Math.max(...runOf); r++) {
            copyInto(many.dir, names.filter((_, i) => runOf[i % runOf.length] === r));
            last = await runRollup({ source: many.dir, out: path.join(root, 'out-many'), now: NOW, graceMs: s.graceMs });
          }
          expect(last!.intervals).toEqual(single.intervals);
          expect(values(last!).filter((x) => x.ms > 0).sort(byKey)).toEqual(values(single).filter((x) => x.ms > 0).sort(byKey));
          expect(last!.report.conflicting_duplicates.count).toBe(single.report.conflicting_duplicates.count);
          if (forged.length > 0) expect(single.report.conflicting_duplicates.count).toBeGreaterThan(0);
        }),
      ),
      { numRuns: 10 },
    );
  }, TWIN_TIMEOUT_MS);
});

async function listNames(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = (rel: string): void => {
    for (const e of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.name.startsWith('.')) continue;
      if (e.isDirectory()) walk(r);
      else out.push(r);
    }
  };
  walk('');
  return out.sort();
}
