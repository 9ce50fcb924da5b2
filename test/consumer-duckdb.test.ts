/**
 * The engine (runRollup of metering-ledger/sink: the rules of sink/sql/rules rendered for DuckDB,
 * contract v2's machine as the metering_fold UDF) and the reference model (test/reference/) must
 * agree on every interval, every hourly row with its version, every revision and the whole
 * report: on a hand-built fleet, over several runs, and on random fleets split over random runs.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import type { LedgerEntry } from 'metering-ledger';
import { runRollup as runEngine } from 'metering-ledger/sink';
import { runRollup } from './reference/run-rollup.js';
import { HOUR, MIN, T0, TestBucket, TestWriter } from './support/consumer-bucket.js';
import { twinRollup } from './support/twin.js';
import { handBuiltFleet } from './support/twin-fleet.js';
import { tempDir } from './support/tmp.js';

const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});

describe('the engine agrees with the reference model', () => {
  it('on a fleet with duplicates, orphans, baselines, several nodes, a stale node and gzip objects, over three runs', async () => {
    const t = tempDir('consumer-duck');
    cleanups.push(t.cleanup);
    const twin = twinRollup(runRollup, runEngine);
    cleanups.push(twin.cleanup);
    const bucket = new TestBucket(path.join(t.dir, 'bucket'));
    const out = path.join(t.dir, 'out');
    const fleet = await handBuiltFleet(bucket);
    const now = fleet.now;
    const first = await twin.run({ source: bucket.dir, out, now, graceMs: 5 * MIN, staleAfterMs: 6 * HOUR });
    expect(first.intervals.length).toBeGreaterThan(5);
    expect(first.intervals.some((i) => i.unconfirmed_end)).toBe(true);
    expect(first.intervals.some((i) => i.close_reason === 'handoff')).toBe(true);
    expect(first.report.seq_gaps.missing).toBeGreaterThan(0);

    // node-c comes back with its stop for vm6: final hours change, both engines emit the same revisions.
    const later = await fleet.comeBack();
    const second = await twin.run({ source: bucket.dir, out, now: later, graceMs: 5 * MIN, staleAfterMs: 6 * HOUR });
    expect(second.revisions.length).toBeGreaterThan(0);
    // Nothing new: same outputs, no revisions.
    const third = await twin.run({ source: bucket.dir, out, now: later, graceMs: 5 * MIN, staleAfterMs: 6 * HOUR });
    expect(third.revisions).toEqual([]);
    expect(twin.comparisons()).toBe(3);
  });
});

const KINDS = ['vm.compute.start', 'vm.compute.stop', 'vm.compute.running', 'vm.storage.start', 'vm.storage.stop', 'snap.storage.start', 'snap.storage.stop', 'snap.storage.running'] as const;
const NODES = ['n1', 'n2', 'n3'] as const;
const SECOND = 1000;
const DAY = 24 * HOUR;

/** One entry of a random fleet: a lifecycle event, how it is shipped, and what can go wrong with it. */
const arbEvent = fc.record({
  kind: fc.constantFrom(...KINDS),
  res: fc.constantFrom('r1', 'r2', 'r3'),
  node: fc.constantFrom(...NODES),
  writer: fc.constantFrom('a', 'b'),
  // Quarter hours: many ties across nodes and writers (migrations, restores), then each node's clock offset.
  q: fc.integer({ min: 0, max: 40 }),
  cpu: fc.integer({ min: 1, max: 4 }),
  copy: fc.constantFrom('none', 'none', 'none', 'duplicate', 'conflict'),
  oddity: fc.constantFrom('none', 'none', 'none', 'none', 'none', 'seq-conflict', 'node-mismatch', 'skew'),
});

const arbProgress = fc.record({
  mode: fc.constantFrom('fresh', 'fresh', 'fresh', 'stale', 'garbage', 'keep'),
  behindMin: fc.integer({ min: 0, max: 180 }),
  tailSeq: fc.integer({ min: 0, max: 2 }),
});

/** A live migration: the stop on one node and the start on the next share one instant, each by its node's clock. */
const arbMigration = fc.record({
  res: fc.constantFrom('r1', 'r2', 'r3'),
  from: fc.constantFrom(...NODES),
  to: fc.constantFrom(...NODES),
  q: fc.integer({ min: 1, max: 40 }),
});

const arbFleet = fc.record({
  events: fc.array(arbEvent, { minLength: 1, maxLength: 30 }),
  migrations: fc.array(arbMigration, { maxLength: 4 }),
  offsets: fc.tuple(...NODES.map(() => fc.integer({ min: -5 * SECOND, max: 5 * SECOND }))),
  runs: fc.integer({ min: 1, max: 4 }),
  /** For every object: the run that uploads it (mod runs) and when its segment was created (its name's order). */
  objects: fc.array(fc.record({ run: fc.nat(), segmentHour: fc.integer({ min: -2, max: 2 }), size: fc.integer({ min: 1, max: 6 }) }), { minLength: 1, maxLength: 12 }),
  progress: fc.array(fc.tuple(arbProgress, arbProgress, arbProgress), { minLength: 4, maxLength: 4 }),
  stepHours: fc.array(fc.integer({ min: 1, max: 30 }), { minLength: 4, maxLength: 4 }),
  graceMs: fc.constantFrom(0, 5 * MIN),
  retainMs: fc.constantFrom(2 * HOUR, 12 * HOUR, 7 * DAY),
});

describe('the engine agrees with the reference model on random fleets', () => {
  it('multi-node handoffs, clock offsets, duplicates, conflicting copies, seq conflicts, skew, progress faults, runs split at random points (property)', async () => {
    await fc.assert(
      fc.asyncProperty(arbFleet, async (f) => {
        const t = tempDir('consumer-duck-prop');
        const twin = twinRollup(runRollup, runEngine);
        try {
          const bucket = new TestBucket(path.join(t.dir, 'bucket'));
          const out = path.join(t.dir, 'out');
          const writers = new Map<string, TestWriter>();
          const byNode = new Map<string, LedgerEntry[]>(NODES.map((n) => [n, []]));
          for (const e of f.events) {
            const key = `${e.node}/${e.writer}`;
            if (!writers.has(key)) writers.set(key, new TestWriter(e.node, `${e.node}-${e.writer}`));
            const w = writers.get(key)!;
            const offset = f.offsets[NODES.indexOf(e.node)]!;
            const time = e.oddity === 'skew' ? T0 + 400 * DAY : T0 + e.q * 15 * MIN + offset;
            let entry = w.entry(e.kind, e.res, time, { cpu: e.cpu });
            // A cloned node image: a fresh id under a (writer, seq) already spent.
            if (e.oddity === 'seq-conflict' && w.seq > 1) entry = { ...entry, seq: w.seq - 1 };
            // Written under another node id than the one the shipper ships under.
            if (e.oddity === 'node-mismatch') entry = { ...entry, node: 'node-7' };
            const list = byNode.get(e.node)!;
            list.push(entry);
            if (e.copy === 'duplicate') list.push(entry);
            if (e.copy === 'conflict') list.push({ ...entry, shape: { ...entry.shape, cpu: entry.shape.cpu + 16 } });
          }
          for (const m of f.migrations) {
            for (const [node, kind] of [[m.from, 'vm.compute.stop'], [m.to, 'vm.compute.start']] as const) {
              const key = `${node}/a`;
              if (!writers.has(key)) writers.set(key, new TestWriter(node, `${node}-a`));
              byNode.get(node)!.push(writers.get(key)!.entry(kind, m.res, T0 + m.q * 15 * MIN + f.offsets[NODES.indexOf(node)]!, { reason: kind.endsWith('stop') ? 'stop-user' : 'restore' }));
            }
          }
          // Cut each node's entries into objects, and give each object a run and a segment time.
          const uploads: { run: number; node: string; segmentHour: number; entries: LedgerEntry[] }[] = [];
          let k = 0;
          for (const [node, list] of byNode) {
            for (let i = 0; i < list.length; ) {
              const o = f.objects[k++ % f.objects.length]!;
              uploads.push({ run: o.run % f.runs, node, segmentHour: o.segmentHour, entries: list.slice(i, i + o.size) });
              i += o.size;
            }
          }
          let now = T0 + 4 * HOUR;
          for (let run = 0; run < f.runs; run++) {
            for (const u of uploads.filter((x) => x.run === run)) await bucket.put(u.entries, { segment: bucket.segment(T0 + u.segmentHour * HOUR) });
            for (let n = 0; n < NODES.length; n++) {
              const node = NODES[n]!;
              const p = f.progress[run]![n]!;
              const file = path.join(bucket.dir, 'nodes', `${node}.json`);
              if (p.mode === 'keep') continue;
              if (p.mode === 'garbage') {
                await bucket.dest.put(`nodes/${node}.json`, Buffer.from('{"v":1,"node":'));
                fs.utimesSync(file, now / 1000, now / 1000);
                continue;
              }
              const shipped: Record<string, number> = {};
              for (const [key, w] of writers) if (key.startsWith(`${node}/`)) shipped[w.writer] = w.seq + p.tailSeq;
              await bucket.progress(node, now - p.behindMin * MIN, now, shipped, { writtenAt: p.mode === 'stale' ? now - 7 * HOUR : now });
            }
            await twin.run({ source: bucket.dir, out, now, graceMs: f.graceMs, staleAfterMs: 6 * HOUR, retainMs: f.retainMs, maxSkewMs: 30 * DAY });
            now += f.stepHours[run]! * HOUR;
          }
          expect(twin.comparisons()).toBe(f.runs);
        } finally {
          twin.cleanup();
          t.cleanup();
        }
      }),
      { numRuns: 25 },
    );
    // Hundreds of engine runs (each a DuckDB database): a bound for a loaded machine, not a speed target.
  }, 600_000);
});
