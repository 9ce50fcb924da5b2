/**
 * The scale path: the DuckDB twin of the BigQuery SQL (sink/sql/duckdb) runs over the same objects
 * as the TypeScript rollup and must agree row for row: intervals, anomalies, watermark, hourly rows.
 * Covered: dedup by id, ordering, start/baseline/stop machine, duplicate/orphan reporting, opening
 * shape, exact hour splits, multi-node watermark with grace, stale nodes (unconfirmed_end). Not
 * covered by SQL: revisions (SQL keeps no memory of what was published) and the retention horizon.
 */
import * as path from 'node:path';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { runRollup, type RollupResult } from 'metering-ledger/sink';
import { HOUR, MIN, T0, TestBucket, TestWriter } from './support/consumer-bucket.js';
import { runDuckDbRollup, type DuckRow } from './support/duckdb-rollup.js';
import { tempDir } from './support/tmp.js';

const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});

function normTs(res: RollupResult) {
  return {
    hourly: res.hourly.map((r) => [Date.parse(r.hour), r.family, r.resource_id, r.node, r.hypervisor, r.cpu, r.mem_bytes, r.storage_bytes, r.ms, r.final]),
    intervals: res.intervals.map((i) => [i.family, i.resource_id, i.node, i.hypervisor, i.shape.cpu, i.shape.mem_bytes, i.shape.storage_bytes, Date.parse(i.start), i.end === null ? null : Date.parse(i.end), i.open_reason, i.close_reason, i.baseline, i.unconfirmed_end, i.start_event_id, i.end_event_id]),
    anomalies: [
      ...res.report.orphan_stops.items,
      ...res.report.duplicate_starts.items,
      ...res.report.duplicate_stops.items,
    ]
      .map((a) => [a.type, a.family, a.resource_id, a.event_id])
      .sort((x, y) => (x.join() < y.join() ? -1 : 1)),
    watermark: Date.parse(res.report.watermark),
  };
}

const num = (v: DuckRow[string] | undefined): number | null => (v === null || v === undefined ? null : Number(v));

function normDuck(d: Awaited<ReturnType<typeof runDuckDbRollup>>) {
  return {
    hourly: d.hourly.map((r) => [num(r.hour_ms), r.family, r.resource_id, r.node, r.hypervisor, num(r.cpu), num(r.mem_bytes), num(r.storage_bytes), num(r.ms), r.final]),
    intervals: d.intervals.map((i) => [i.family, i.resource_id, i.node, i.hypervisor, num(i.cpu), num(i.mem_bytes), num(i.storage_bytes), num(i.start_ms), num(i.end_ms), i.open_reason, i.close_reason, i.baseline, i.unconfirmed_end, i.start_event_id, i.end_event_id]),
    anomalies: d.anomalies.map((a) => [a.type, a.family, a.resource_id, a.event_id]).sort((x, y) => (x.join() < y.join() ? -1 : 1)),
    watermark: d.watermark,
  };
}

async function compare(bucket: TestBucket, root: string, now: number, graceMs: number, staleAfterMs: number) {
  const ts = await runRollup({ source: bucket.dir, out: path.join(root, 'out'), now, graceMs, staleAfterMs });
  const duck = await runDuckDbRollup(bucket.dir, { nowMs: now, graceMs, staleAfterMs });
  return { ts: normTs(ts), duck: normDuck(duck) };
}

describe('DuckDB twin agrees with the TypeScript rollup', () => {
  it('on a fleet with duplicates, orphans, baselines, several nodes, a stale node and gzip objects', async () => {
    const t = tempDir('consumer-duck');
    cleanups.push(t.cleanup);
    const bucket = new TestBucket(path.join(t.dir, 'bucket'));
    const a = new TestWriter('node-a', 'wa1');
    const a2 = new TestWriter('node-a', 'wa2');
    const b = new TestWriter('node-b', 'wb1');
    const c = new TestWriter('node-c', 'wc1');
    const aEntries = [
      a.start('vm1', T0 + 7 * MIN, { cpu: 4 }),
      a.entry('vm.storage.start', 'vm1', T0 + 7 * MIN, { storage: 50 }),
      a.start('vm1', T0 + 9 * MIN, { cpu: 32 }),
      a.stop('vm1', T0 + 3 * HOUR + 1),
      a.stop('vm1', T0 + 3 * HOUR + 2),
      a.stop('vm-orphan', T0 + HOUR),
      a.entry('snap.storage.start', 's1', T0 + 2 * HOUR, { storage: 7, hypervisor: '' }),
    ];
    await bucket.put(aEntries, { gzip: true });
    await bucket.put([aEntries[2]!, aEntries[3]!]); // duplicates by id
    await bucket.put([a2.running('vm2', T0 + 30 * MIN), a2.running('vm2', T0 + 90 * MIN), a2.start('vm3', T0 + 5 * HOUR + 59 * MIN)]);
    await bucket.put([b.start('vm4', T0 + HOUR), b.stop('vm4', T0 + HOUR), b.start('vm4', T0 + HOUR), b.stop('vm4', T0 + 2 * HOUR + 13 * MIN)]);
    // Same time, two writers: ties broken by (writer, seq).
    await bucket.put([c.start('vm5', T0 + 4 * HOUR), c.running('vm6', T0 + 4 * HOUR + 1)]);
    await bucket.put([new TestWriter('node-c', 'wc0').stop('vm5', T0 + 4 * HOUR)]);
    await bucket.put([c.running('vm6', T0 + 4 * HOUR + 20 * MIN)]);
    const now = T0 + 12 * HOUR;
    await bucket.progress('node-a', T0 + 7 * HOUR + 17 * MIN, now - MIN);
    await bucket.progress('node-b', T0 + 9 * HOUR, now - 2 * MIN);
    await bucket.progress('node-c', T0 + 4 * HOUR + 45 * MIN, now - 7 * HOUR); // stale
    const { ts, duck } = await compare(bucket, t.dir, now, 5 * MIN, 6 * HOUR);
    expect(ts.intervals.length).toBeGreaterThan(5);
    expect(ts.intervals.some((i) => i[12] === true)).toBe(true); // an unconfirmed end is in the set
    expect(ts.anomalies.length).toBeGreaterThanOrEqual(4);
    expect(duck.watermark).toBe(ts.watermark);
    expect(duck.anomalies).toEqual(ts.anomalies);
    expect(duck.intervals).toEqual(ts.intervals);
    expect(duck.hourly).toEqual(ts.hourly);
  });

  it('on random event sets (property)', async () => {
    const kinds = ['vm.compute.start', 'vm.compute.stop', 'vm.compute.running', 'vm.storage.start', 'vm.storage.stop', 'snap.storage.start', 'snap.storage.stop', 'snap.storage.running'] as const;
    const event = fc.record({
      kind: fc.constantFrom(...kinds),
      res: fc.constantFrom('r1', 'r2', 'r3'),
      node: fc.constantFrom('n1', 'n2'),
      writer: fc.constantFrom('w1', 'w2'),
      t: fc.integer({ min: 0, max: 32 }).map((q) => T0 + q * 15 * MIN), // coarse: many ties across writers
      cpu: fc.integer({ min: 1, max: 4 }),
      dup: fc.boolean(),
    });
    await fc.assert(
      fc.asyncProperty(fc.array(event, { minLength: 1, maxLength: 25 }), fc.integer({ min: 0, max: 10 * 60 }), fc.integer({ min: 0, max: 10 * 60 }), fc.constantFrom('live', 'stale', 'silent'), async (events, completeMin, n2CompleteMin, n2) => {
        const t = tempDir('consumer-duck-prop');
        try {
          const bucket = new TestBucket(path.join(t.dir, 'bucket'));
          const writers = new Map<string, TestWriter>();
          const byNode = new Map<string, ReturnType<TestWriter['entry']>[]>();
          for (const e of events) {
            const key = `${e.node}/${e.writer}`;
            if (!writers.has(key)) writers.set(key, new TestWriter(e.node, `${e.node}-${e.writer}`));
            const entry = writers.get(key)!.entry(e.kind, e.res, e.t, { cpu: e.cpu });
            const list = byNode.get(e.node) ?? [];
            list.push(entry);
            if (e.dup) list.push(entry);
            byNode.set(e.node, list);
          }
          for (const list of byNode.values()) await bucket.put(list);
          const now = T0 + 12 * HOUR;
          await bucket.progress('n1', T0 + completeMin * MIN, now);
          // n2 is live, stale, or never reported at all (data without a progress object).
          if (n2 !== 'silent') await bucket.progress('n2', T0 + n2CompleteMin * MIN, n2 === 'stale' ? now - 7 * HOUR : now);
          const { ts, duck } = await compare(bucket, t.dir, now, 0, 6 * HOUR);
          expect(duck.watermark).toBe(ts.watermark);
          expect(duck.intervals).toEqual(ts.intervals);
          expect(duck.anomalies).toEqual(ts.anomalies);
          expect(duck.hourly).toEqual(ts.hourly);
        } finally {
          t.cleanup();
        }
      }),
      { numRuns: 20 },
    );
  });
});
