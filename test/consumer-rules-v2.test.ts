/**
 * Billing rules v2 (docs/consumer.md, contract v2): each of the eight ways rules v1 mis-billed a
 * realistic fleet, as a scenario through real files (a local bucket laid out by the shipper's
 * naming, read by the real rollup), and through real processes where the shipper is part of the
 * story (the node id a recorder writes vs. the one the shipper ships under; a future-dated line).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FileRecorder, KINDS, REASONS, type LedgerEntry } from 'metering-ledger';
import { LocalDirDestination, type HourlyRow, type NodeProgress, type RollupOptions, type RollupReport } from 'metering-ledger/sink';
import { runRollup } from './reference/run-rollup.js';
import { readOutputs } from './support/read-outputs.js';
import { FlakyDestination } from './support/flaky-destination.js';
import { at, GiB, HOUR, MIN, T0, TestBucket, TestWriter } from './support/consumer-bucket.js';
import { spawnCli, waitExit } from './support/spawn.js';
import { tempDir } from './support/tmp.js';

const DAY = 24 * HOUR;
const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});

function setup(): { bucket: TestBucket; out: string; root: string } {
  const t = tempDir('rules-v2');
  cleanups.push(t.cleanup);
  return { bucket: new TestBucket(path.join(t.dir, 'bucket')), out: path.join(t.dir, 'out'), root: t.dir };
}

const rollup = (bucket: TestBucket, out: string | undefined, now: number, extra: Partial<RollupOptions> = {}) =>
  runRollup({ source: bucket.dir, ...(out ? { out } : {}), now, graceMs: 0, ...extra });

const msOf = (rows: readonly HourlyRow[], resource: string, node?: string): number =>
  rows.filter((r) => r.resource_id === resource && r.family === 'vm.compute' && (node === undefined || r.node === node)).reduce((n, r) => n + r.ms, 0);

describe('billing rules v2: the eight failure cases', () => {
  it('1. a migration (stop on A, start on B at one emitted_at, or B 1 ms behind) bills both runs in full', async () => {
    const { bucket } = setup();
    // Writer ids chosen so that B's sort before A's: v1 broke ties by writer and billed B nothing.
    const a = new TestWriter('node-a', 'w-zzz');
    const b = new TestWriter('node-b', 'w-aaa');
    const move = T0 + 2 * HOUR;
    await bucket.put([a.start('vm1', T0), a.stop('vm1', move, { reason: REASONS.STOP_USER }), a.start('vm2', T0), a.stop('vm2', move, { reason: REASONS.STOP_USER })]);
    await bucket.put([b.start('vm1', move, { reason: REASONS.RESTORE }), b.start('vm2', move - 1, { reason: REASONS.RESTORE })]);
    const now = T0 + 6 * HOUR;
    await bucket.progress('node-a', now, now);
    await bucket.progress('node-b', now, now);
    const res = await rollup(bucket, undefined, now);
    // Same emitted_at: A's stop applies before B's start (an interval was open before the tie group).
    expect(msOf(res.hourly, 'vm1', 'node-a')).toBe(2 * HOUR);
    expect(msOf(res.hourly, 'vm1', 'node-b')).toBe(4 * HOUR);
    expect(res.report.duplicate_starts.count).toBe(0);
    // B 1 ms behind: B's start hands the VM over, A's later stop is an expected handoff stop.
    expect(msOf(res.hourly, 'vm2', 'node-a')).toBe(2 * HOUR - 1);
    expect(msOf(res.hourly, 'vm2', 'node-b')).toBe(4 * HOUR + 1);
    expect(res.intervals.filter((i) => i.resource_id === 'vm2').map((i) => [i.node, i.close_reason])).toEqual([
      ['node-a', 'handoff'],
      ['node-b', null],
    ]);
    expect(res.report.handoff_stops.items.map((x) => [x.resource_id, x.node])).toEqual([['vm2', 'node-a']]);
  });

  it('1b. a restore (stop and start sharing one `now`, two recorder instances) bills without a gap; a start and stop in one ms is zero-length, not open', async () => {
    const { bucket } = setup();
    const restoreStop = new TestWriter('n1', 'w-b');
    const restoreStart = new TestWriter('n1', 'w-a');
    const t = T0 + HOUR;
    await bucket.put([restoreStop.start('vm1', T0), restoreStop.stop('vm1', t, { reason: REASONS.STOP_USER }), restoreStop.start('vm3', T0 + 30 * MIN)]);
    // vm3's stop comes from the writer that sorts first: v1 saw an orphan stop, then billed vm3 forever.
    await bucket.put([restoreStart.start('vm1', t, { reason: REASONS.RESTORE, cpu: 8 }), restoreStart.stop('vm3', T0 + 30 * MIN)]);
    const now = T0 + 3 * HOUR;
    await bucket.progress('n1', now, now);
    const res = await rollup(bucket, undefined, now);
    expect(res.intervals.filter((i) => i.resource_id === 'vm1').map((i) => [i.start, i.end, i.shape.cpu])).toEqual([
      [at(T0), at(t), 2],
      [at(t), null, 8],
    ]);
    expect(msOf(res.hourly, 'vm1')).toBe(3 * HOUR);
    expect(res.intervals.filter((i) => i.resource_id === 'vm3').map((i) => [i.start, i.end])).toEqual([[at(T0 + 30 * MIN), at(T0 + 30 * MIN)]]);
    expect(msOf(res.hourly, 'vm3')).toBe(0);
    expect(res.report.orphan_stops.count).toBe(0);
  });

  it('3. distinct ids sharing one (writer, seq) are both billed and reported as seq conflicts', async () => {
    const { bucket } = setup();
    const w = new TestWriter('n1', 'w1');
    const original = [w.start('vm1', T0), w.stop('vm1', T0 + HOUR)];
    // A restored backup / cloned node image: the same writer id and seq numbers again, new entries.
    const clone = new TestWriter('n1', 'w1');
    await bucket.put(original);
    await bucket.put([clone.start('vm2', T0 + HOUR), clone.stop('vm2', T0 + 3 * HOUR)]);
    const now = T0 + 4 * HOUR;
    await bucket.progress('n1', now, now);
    const res = await rollup(bucket, undefined, now);
    expect(msOf(res.hourly, 'vm1')).toBe(HOUR);
    expect(msOf(res.hourly, 'vm2')).toBe(2 * HOUR);
    expect(res.report.seq_conflicts.count).toBe(2);
    expect(res.report.duplicates).toBe(0);
  });

  it('4. a conflicting copy read in an earlier run than the original: incremental runs equal a one-shot run (the change is a revision)', async () => {
    const { bucket, out, root } = setup();
    const w = new TestWriter('n1', 'w1');
    const start = w.start('vm1', T0, { cpu: 2 });
    const stop = w.stop('vm1', T0 + 2 * HOUR);
    const forged: LedgerEntry = { ...start, shape: { ...start.shape, cpu: 64 } };
    // The original lives in the object that sorts first (an older segment) but is uploaded later.
    await bucket.put([forged, stop]);
    await bucket.progress('n1', T0 + 3 * HOUR, T0 + 3 * HOUR);
    const first = await rollup(bucket, out, T0 + 3 * HOUR);
    expect(first.hourly.every((r) => r.cpu === 64)).toBe(true);
    await bucket.put([start], { segment: bucket.segment(T0 - DAY) });
    const second = await rollup(bucket, out, T0 + 3 * HOUR);
    const oneShot = await rollup(bucket, path.join(root, 'one-shot'), T0 + 3 * HOUR);
    expect(second.intervals).toEqual(oneShot.intervals);
    expect(second.intervals[0]!.shape.cpu).toBe(2);
    const current = second.hourly.filter((r) => r.ms > 0).map((r) => [r.hour, r.cpu, r.ms]);
    expect(current).toEqual(oneShot.hourly.map((r) => [r.hour, r.cpu, r.ms]));
    // The cpu-64 rows published final are withdrawn explicitly, the cpu-2 rows appear as revisions.
    expect(second.revisions.length).toBe(4);
    expect(second.report.conflicting_duplicates.count).toBe(1);
    expect(oneShot.report.conflicting_duplicates.count).toBe(1);
  });

  it('4b. a copy read later from an object that sorts first wins the kept row, not the writer: its node stays that of the entry read first', async () => {
    const { bucket, out } = setup();
    const w = new TestWriter('node-b', 'w1');
    const start = w.start('vm1', T0);
    const stop = w.stop('vm1', T0 + HOUR);
    // Run 1 reads the start from node-b's object and the stop from node-c's (a moved disk): the
    // writer's first sighting, in name order, is node-b's. node-b says w1 shipped up to seq 4.
    await bucket.put([start]);
    await bucket.put([stop], { node: 'node-c' });
    const now = T0 + 2 * HOUR;
    for (const node of ['node-a', 'node-c']) await bucket.progress(node, now, now);
    await bucket.progress('node-b', now, now, { w1: 4 });
    const first = await rollup(bucket, out, now);
    expect(first.report.seq_gaps.items).toEqual([{ writer: 'w1', node: 'node-b', missing: [[3, 4]], count: 2 }]);
    // Run 2 reads another copy of the stop, from node-a, whose object sorts before both: it becomes
    // the stop's kept copy, but w1 was still first read on node-b, so its gaps are node-b's.
    await bucket.put([stop], { node: 'node-a' });
    const second = await rollup(bucket, out, now);
    expect(second.report.seq_gaps.items).toEqual(first.report.seq_gaps.items);
  });

  it('5. a future-dated line cannot poison the watermark: the node is trusted only up to its last write', async () => {
    const { bucket, out } = setup();
    const w = new TestWriter('n1', 'w1');
    await bucket.put([w.start('vm1', T0), w.running('vm-typo', Date.UTC(2028, 10, 1))]);
    // The node's report claims complete through 2028, written (by the bucket's clock) at T0+1h.
    await bucket.progress('n1', Date.UTC(2028, 10, 1), T0 + HOUR);
    // A 3-hour shipper outage: nothing new written. The watermark must wait at T0+1h.
    const during = await rollup(bucket, out, T0 + 4 * HOUR, { maxSkewMs: 1000 * DAY });
    expect(during.report.watermark).toBe(at(T0 + HOUR));
    expect(during.report.nodes[0]).toMatchObject({ node: 'n1', stale: false, holds_watermark: true, updated_at: at(T0 + HOUR) });
    // The backlog arrives: vm1 had stopped at T0+2h. No final hour is revised.
    await bucket.put([w.stop('vm1', T0 + 2 * HOUR)]);
    await bucket.progress('n1', T0 + 4 * HOUR, T0 + 4 * HOUR);
    const after = await rollup(bucket, out, T0 + 4 * HOUR, { maxSkewMs: 1000 * DAY });
    expect(after.report.revisions).toBe(0);
    expect(msOf(after.hourly, 'vm1')).toBe(2 * HOUR);
  });

  it('6. a node back after more than --retain: its stop still ends the interval, never billed forever', async () => {
    const { bucket, out } = setup();
    const w = new TestWriter('n1', 'w1');
    await bucket.put([w.start('vm1', T0)]);
    await bucket.progress('n1', T0 + HOUR, T0 + HOUR);
    await rollup(bucket, out, T0 + HOUR, { retainMs: DAY });
    // The node goes dark for 8 days: its open interval ends at what it vouched for (stale node).
    const dark = await rollup(bucket, out, T0 + 8 * DAY, { retainMs: DAY });
    expect(dark.intervals[0]).toMatchObject({ unconfirmed_end: true, end: at(T0 + HOUR) });
    // It comes back with its backlog: the VM had stopped 90 minutes after it started.
    await bucket.put([w.stop('vm1', T0 + 90 * MIN)]);
    await bucket.progress('n1', T0 + 8 * DAY + HOUR, T0 + 8 * DAY + HOUR);
    const back = await rollup(bucket, out, T0 + 8 * DAY + HOUR, { retainMs: DAY });
    expect(back.report.too_late_entries.count).toBe(0);
    expect(back.intervals.map((i) => [i.start, i.end, i.close_reason])).toEqual([[at(T0), at(T0 + 90 * MIN), 'stop-user']]);
    expect(msOf(back.hourly, 'vm1')).toBe(90 * MIN);
    // The one changed final hour is a revision (T0+1h..+1h30 was not billed, now is).
    expect(back.revisions.map((r) => [r.hour, r.ms, r.previous_ms])).toEqual([[at(T0 + HOUR), 30 * MIN, 0]]);
    // A start that old is still too late to bill.
    await bucket.put([w.start('vm9', T0 + 2 * HOUR)]);
    const late = await rollup(bucket, out, T0 + 8 * DAY + HOUR, { retainMs: DAY });
    expect(late.report.too_late_entries.count).toBe(1);
    expect(msOf(late.hourly, 'vm9')).toBe(0);
  });

  it('7. a node whose clock runs 3 days ahead still goes stale when it dies (the bucket clock is trusted)', async () => {
    const { bucket } = setup();
    const w = new TestWriter('n1', 'w1');
    await bucket.put([w.start('vm1', T0)]);
    // reported_at says T0+3d+1h; the bucket stored the object at T0+1h.
    await bucket.progress('n1', T0 + 3 * DAY + HOUR, T0 + 3 * DAY + HOUR, {}, { writtenAt: T0 + HOUR });
    const res = await rollup(bucket, undefined, T0 + 10 * HOUR);
    expect(res.report.nodes[0]).toMatchObject({ stale: true, reported_at: at(T0 + 3 * DAY + HOUR), updated_at: at(T0 + HOUR) });
    expect(res.intervals[0]).toMatchObject({ unconfirmed_end: true, end: at(T0 + HOUR), close_reason: 'stale-node' });
    expect(msOf(res.hourly, 'vm1')).toBe(HOUR);
  });

  it('8. a transient read error on a progress object holds the watermark at its last known value (fail closed)', async () => {
    const { bucket, out } = setup();
    const w1 = new TestWriter('n1', 'w1');
    const w2 = new TestWriter('n2', 'w2');
    await bucket.put([w1.start('vm1', T0)]);
    await bucket.put([w2.start('vm2', T0)]);
    await bucket.progress('n1', T0 + 2 * HOUR, T0 + 2 * HOUR);
    await bucket.progress('n2', T0 + 2 * HOUR, T0 + 2 * HOUR);
    const first = await rollup(bucket, out, T0 + 2 * HOUR);
    expect(first.report.watermark).toBe(at(T0 + 2 * HOUR));
    // n1 moves on; n2 keeps shipping too, but this run cannot read n2's progress object (one 503).
    await bucket.progress('n1', T0 + 5 * HOUR, T0 + 5 * HOUR);
    await bucket.progress('n2', T0 + 5 * HOUR, T0 + 5 * HOUR);
    const flaky = new FlakyDestination(new LocalDirDestination(bucket.dir));
    const get = flaky.get.bind(flaky);
    let failed = 0;
    flaky.get = async (name: string) => {
      if (name === 'nodes/n2.json' && failed++ === 0) throw Object.assign(new Error('injected: 503 Service Unavailable'), { code: 503 });
      return get(name);
    };
    const during = await rollup(bucket, out, T0 + 5 * HOUR, { destination: { destination: flaky, prefix: '' } });
    expect(failed).toBe(1);
    expect(during.report.watermark).toBe(at(T0 + 2 * HOUR));
    expect(during.report.nodes.find((n) => n.node === 'n2')).toMatchObject({ stale: false, holds_watermark: true, progress_error: expect.stringMatching(/503/) });
    // n2's backlog lands (vm2 stopped at T0+3h) and its object reads fine: nothing final is revised.
    await bucket.put([w2.stop('vm2', T0 + 3 * HOUR)]);
    const after = await rollup(bucket, out, T0 + 5 * HOUR);
    expect(after.report.watermark).toBe(at(T0 + 5 * HOUR));
    expect(after.report.revisions).toBe(0);
    expect(msOf(after.hourly, 'vm2')).toBe(3 * HOUR);
  });

  it('8b. a progress object listed but never readable holds the watermark where it is', async () => {
    const { bucket, out } = setup();
    const w = new TestWriter('n1', 'w1');
    await bucket.put([w.start('vm1', T0)]);
    await bucket.dest.put('nodes/n1.json', Buffer.from('{"v":1,'));
    const res = await rollup(bucket, out, T0 + 5 * HOUR);
    expect(res.report.nodes[0]).toMatchObject({ stale: false, holds_watermark: true, progress_error: expect.stringMatching(/JSON/) });
    expect(Date.parse(res.report.watermark)).toBeLessThanOrEqual(0);
    expect(res.hourly.filter((r) => r.final)).toEqual([]);
  });
});

describe('billing rules v2 through the real recorder, shipper and rollup processes', () => {
  const metering = (args: string[]) => waitExit(spawnCli(args, { env: { ...process.env, METERING_LOG_LEVEL: 'warn' } }));
  const shape = { cpu: 2, mem_bytes: 4 * GiB, storage_bytes: 10 * GiB };

  it('2. entries written as node-7 but shipped under the shipper default node (the hostname) are billed, and counted as mismatches', async () => {
    const t = tempDir('rules-v2-node');
    cleanups.push(t.cleanup);
    const ledger = path.join(t.dir, 'ledger');
    const bucket = path.join(t.dir, 'bucket');
    const now = Date.now();
    const started = now - 8.9 * HOUR;
    const rec = new FileRecorder({ dir: ledger, node: 'node-7', now: () => new Date(started) });
    rec.emit({ kind: KINDS.VM_COMPUTE_START, reason: REASONS.BOOT, vm_id: 'vm-a', shape, emitted_at: new Date(started) });
    rec.close();
    // No --node: the shipper ships under its default (the hostname), as an operator following the docs would.
    const shipped = await metering(['ship', '--once', '--ledger-dir', ledger, '--dest', bucket, '--no-progress-bar']);
    expect(shipped.code, shipped.stderr).toBe(0);
    const rolled = await metering(['rollup', '--source', bucket, '--out', path.join(t.dir, 'out'), '--now', new Date(now).toISOString(), '--grace', '0s']);
    expect(rolled.code, rolled.stderr).toBe(0);
    // The CLI runs the engine: partitioned outputs (test/support/read-outputs.ts).
    const { report, hourly } = readOutputs(path.join(t.dir, 'out'));
    expect(report.node_mismatches.count).toBe(1);
    expect(report.nodes.map((n) => n.stale)).toEqual([false]);
    const billed = msOf(hourly, 'vm-a');
    // Billed up to the watermark (the shipper's trusted report time): 8.9 h minus at most the run's own seconds.
    expect(billed).toBeGreaterThan(8.8 * HOUR);
    expect(billed).toBeLessThanOrEqual(8.9 * HOUR);
    expect(hourly.every((r) => r.node !== 'node-7')).toBe(true);
  });

  it('5b. the shipper never reports complete_through beyond its own clock, whatever the lines say', async () => {
    const t = tempDir('rules-v2-future');
    cleanups.push(t.cleanup);
    const ledger = path.join(t.dir, 'ledger');
    const bucket = path.join(t.dir, 'bucket');
    const rec = new FileRecorder({ dir: ledger, node: 'n1' });
    rec.emit({ kind: KINDS.VM_COMPUTE_START, reason: REASONS.BOOT, vm_id: 'vm-a', shape, emitted_at: new Date() });
    rec.emit({ kind: KINDS.VM_COMPUTE_RUNNING, reason: REASONS.BASELINE, vm_id: 'vm-b', shape, emitted_at: new Date(Date.UTC(2028, 0, 1)) });
    rec.close();
    const before = Date.now();
    const shipped = await metering(['ship', '--once', '--ledger-dir', ledger, '--dest', bucket, '--node', 'n1', '--no-progress-bar']);
    expect(shipped.code, shipped.stderr).toBe(0);
    const progress = JSON.parse(fs.readFileSync(path.join(bucket, 'nodes', 'n1.json'), 'utf8')) as NodeProgress;
    expect(Date.parse(progress.complete_through)).toBeGreaterThanOrEqual(before - 1000);
    expect(Date.parse(progress.complete_through)).toBeLessThanOrEqual(Date.parse(progress.reported_at));
  });
});
