/**
 * The DuckDB twin (runSqlRollup: the rules of sink/sql/rules rendered for DuckDB, contract v2's
 * machine as the metering_fold UDF) and the TypeScript consumer (runRollup) must agree on every
 * interval, every hourly row with its version, every revision and the whole report: on a
 * hand-built fleet, over several runs, and on random fleets split over random runs.
 */
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { runRollup, runSqlRollup } from 'metering-ledger/sink';
import { HOUR, MIN, T0, TestBucket, TestWriter } from './support/consumer-bucket.js';
import { twinRollup } from './support/twin.js';
import { tempDir } from './support/tmp.js';

const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});

describe('DuckDB twin agrees with the TypeScript rollup', () => {
  it('on a fleet with duplicates, orphans, baselines, several nodes, a stale node and gzip objects, over three runs', async () => {
    const t = tempDir('consumer-duck');
    cleanups.push(t.cleanup);
    const twin = twinRollup(runRollup, runSqlRollup);
    const bucket = new TestBucket(path.join(t.dir, 'bucket'));
    const out = path.join(t.dir, 'out');
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
    // Same time, two writers: a tie group.
    await bucket.put([c.start('vm5', T0 + 4 * HOUR), c.running('vm6', T0 + 4 * HOUR + 1)]);
    await bucket.put([new TestWriter('node-c', 'wc0').stop('vm5', T0 + 4 * HOUR)]);
    await bucket.put([c.running('vm6', T0 + 4 * HOUR + 20 * MIN)]);
    // A handoff: vm1's storage moves to node-b while open on node-a.
    await bucket.put([b.entry('vm.storage.start', 'vm1', T0 + 5 * HOUR, { storage: 60 })]);
    const now = T0 + 12 * HOUR;
    await bucket.progress('node-a', T0 + 7 * HOUR + 17 * MIN, now - MIN, { wa1: 9 });
    await bucket.progress('node-b', T0 + 9 * HOUR, now - 2 * MIN);
    await bucket.progress('node-c', T0 + 4 * HOUR + 45 * MIN, now - 7 * HOUR); // stale
    const first = await twin.run({ source: bucket.dir, out, now, graceMs: 5 * MIN, staleAfterMs: 6 * HOUR });
    expect(first.intervals.length).toBeGreaterThan(5);
    expect(first.intervals.some((i) => i.unconfirmed_end)).toBe(true);
    expect(first.intervals.some((i) => i.close_reason === 'handoff')).toBe(true);
    expect(first.report.seq_gaps.missing).toBeGreaterThan(0);

    // node-c comes back with its stop for vm6: final hours change, both engines emit the same revisions.
    await bucket.put([c.stop('vm6', T0 + 6 * HOUR)]);
    await bucket.progress('node-c', T0 + 11 * HOUR, now + HOUR);
    const second = await twin.run({ source: bucket.dir, out, now: now + HOUR, graceMs: 5 * MIN, staleAfterMs: 6 * HOUR });
    expect(second.revisions.length).toBeGreaterThan(0);
    // Nothing new: same outputs, no revisions.
    const third = await twin.run({ source: bucket.dir, out, now: now + HOUR, graceMs: 5 * MIN, staleAfterMs: 6 * HOUR });
    expect(third.revisions).toEqual([]);
    expect(twin.comparisons()).toBe(3);
  });
});
