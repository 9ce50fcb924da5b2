import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { HourlyRow, RollupOptions } from 'metering-ledger/sink';
import { runRollup } from './reference/run-rollup.js';
import { at, HOUR, MIN, T0, TestBucket, TestWriter } from './support/consumer-bucket.js';
import { tempDir } from './support/tmp.js';

const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});

function setup(): { bucket: TestBucket; out: string; root: string } {
  const t = tempDir('consumer');
  cleanups.push(t.cleanup);
  return { bucket: new TestBucket(path.join(t.dir, 'bucket')), out: path.join(t.dir, 'out'), root: t.dir };
}

const rollup = (bucket: TestBucket, out: string, now: number, extra: Partial<RollupOptions> = {}) =>
  runRollup({ source: bucket.dir, out, now, ...extra });

const msOf = (rows: HourlyRow[], resource: string): number => rows.filter((r) => r.resource_id === resource).reduce((n, r) => n + r.ms, 0);

describe('consumer scenarios', () => {
  it('splits an interval across hours exactly, bills the opening shape, marks hours final before the watermark', async () => {
    const { bucket, out } = setup();
    const w = new TestWriter('n1', 'w1');
    await bucket.put([w.start('vm1', T0 + 20 * MIN, { cpu: 4 }), w.stop('vm1', T0 + 2 * HOUR + 10 * MIN, { cpu: 8 })]);
    await bucket.progress('n1', T0 + 3 * HOUR, T0 + 3 * HOUR);
    const res = await rollup(bucket, out, T0 + 3 * HOUR, { graceMs: 0 });
    expect(res.intervals).toHaveLength(1);
    expect(res.intervals[0]).toMatchObject({ start: at(T0 + 20 * MIN), end: at(T0 + 2 * HOUR + 10 * MIN), shape: { cpu: 4 }, open_reason: 'boot', close_reason: 'stop-user', baseline: false });
    expect(res.hourly.map((r) => [r.hour, r.ms, r.cpu, r.final, r.version])).toEqual([
      [at(T0), 40 * MIN, 4, true, 1],
      [at(T0 + HOUR), HOUR, 4, true, 1],
      [at(T0 + 2 * HOUR), 10 * MIN, 4, true, 1],
    ]);
    const files = fs.readdirSync(out).sort();
    expect(files).toEqual(['hourly.ndjson', 'intervals.ndjson', 'report.json', 'revisions.ndjson', 'state.json']);
  });

  it('de-duplicates by id across objects and generations; never bills twice', async () => {
    const { bucket, out } = setup();
    const w = new TestWriter('n1', 'w1');
    const entries = [w.start('vm1', T0), w.stop('vm1', T0 + 30 * MIN)];
    await bucket.put(entries);
    await bucket.put(entries, { gzip: true }); // a re-upload (another segment generation), compressed
    await bucket.put([entries[1]!]);
    await bucket.progress('n1', T0 + 2 * HOUR, T0 + 2 * HOUR);
    const res = await rollup(bucket, out, T0 + 2 * HOUR);
    expect(res.report.entries_read).toBe(5);
    expect(res.report.duplicates).toBe(3);
    expect(res.report.conflicting_duplicates.count).toBe(0);
    expect(res.intervals).toHaveLength(1);
    expect(msOf(res.hourly, 'vm1')).toBe(30 * MIN);
    expect(res.report.duplicate_stops.count).toBe(0);
  });

  it('reports orphan stops, duplicate starts and duplicate stops and never bills them', async () => {
    const { bucket, out } = setup();
    const w = new TestWriter('n1', 'w1');
    await bucket.put([
      w.stop('vm-orphan', T0 + 5 * MIN),
      w.start('vm1', T0 + 10 * MIN, { cpu: 2 }),
      w.start('vm1', T0 + 20 * MIN, { cpu: 16 }), // duplicate start: ignored, the first shape bills
      w.stop('vm1', T0 + 40 * MIN),
      w.stop('vm1', T0 + 50 * MIN), // later stop: duplicate
    ]);
    await bucket.progress('n1', T0 + 2 * HOUR, T0 + 2 * HOUR);
    const res = await rollup(bucket, out, T0 + 2 * HOUR);
    expect(res.report.orphan_stops.count).toBe(1);
    expect(res.report.orphan_stops.items[0]).toMatchObject({ resource_id: 'vm-orphan', emitted_at: at(T0 + 5 * MIN) });
    expect(res.report.duplicate_starts.count).toBe(1);
    expect(res.report.duplicate_stops.count).toBe(1);
    expect(res.intervals.map((i) => [i.resource_id, i.start, i.end, i.shape.cpu])).toEqual([['vm1', at(T0 + 10 * MIN), at(T0 + 40 * MIN), 2]]);
    expect(res.hourly.map((r) => [r.resource_id, r.ms, r.cpu])).toEqual([['vm1', 30 * MIN, 2]]);
  });

  it('a baseline opens an interval when none is open (flagged) and otherwise only confirms', async () => {
    const { bucket, out } = setup();
    const w = new TestWriter('n1', 'w1');
    await bucket.put([
      w.running('vm-base', T0 + 15 * MIN),
      w.running('vm-base', T0 + 45 * MIN, { cpu: 64 }),
      w.stop('vm-base', T0 + 75 * MIN),
      w.start('vm2', T0),
      w.running('vm2', T0 + 30 * MIN),
      w.stop('vm2', T0 + 60 * MIN),
    ]);
    await bucket.progress('n1', T0 + 3 * HOUR, T0 + 3 * HOUR);
    const res = await rollup(bucket, out, T0 + 3 * HOUR);
    expect(res.intervals.map((i) => [i.resource_id, i.baseline, i.open_reason, i.start, i.end, i.shape.cpu])).toEqual([
      ['vm-base', true, 'baseline', at(T0 + 15 * MIN), at(T0 + 75 * MIN), 2],
      ['vm2', false, 'boot', at(T0), at(T0 + 60 * MIN), 2],
    ]);
    expect(msOf(res.hourly, 'vm-base')).toBe(60 * MIN);
    expect(res.report.duplicate_starts.count).toBe(0);
  });

  it('keys families separately: vm.compute and vm.storage by vm_id, snap.storage by snapshot_id', async () => {
    const { bucket, out } = setup();
    const w = new TestWriter('n1', 'w1');
    await bucket.put([
      w.entry('vm.compute.start', 'x', T0),
      w.entry('vm.storage.start', 'x', T0, { reason: 'clone' }),
      w.entry('snap.storage.start', 'x', T0 + 10 * MIN, { storage: 5 }),
      w.entry('vm.compute.stop', 'x', T0 + 20 * MIN),
      w.entry('snap.storage.stop', 'x', T0 + 30 * MIN, { reason: 'snap-rm' }),
    ]);
    await bucket.progress('n1', T0 + 2 * HOUR, T0 + 2 * HOUR);
    const res = await rollup(bucket, out, T0 + 2 * HOUR, { graceMs: 0 });
    expect(res.intervals.map((i) => [i.family, i.end])).toEqual([
      ['snap.storage', at(T0 + 30 * MIN)],
      ['vm.compute', at(T0 + 20 * MIN)],
      ['vm.storage', null],
    ]);
    // The open storage interval counts up to the watermark (2h); hours wholly before it are final.
    expect(res.hourly.filter((r) => r.family === 'vm.storage').map((r) => [r.hour, r.ms, r.final])).toEqual([
      [at(T0), HOUR, true],
      [at(T0 + HOUR), HOUR, true],
    ]);
    expect(res.hourly.find((r) => r.family === 'snap.storage')).toMatchObject({ ms: 20 * MIN, storage_bytes: 5 });
  });

  it('multi-node watermark: minimum over live nodes minus grace; later hours provisional; open intervals count up to it', async () => {
    const { bucket, out } = setup();
    const a = new TestWriter('node-a', 'wa');
    const b = new TestWriter('node-b', 'wb');
    await bucket.put([a.start('vm-a', T0)]);
    await bucket.put([b.start('vm-b', T0 + 30 * MIN), b.stop('vm-b', T0 + 4 * HOUR + 30 * MIN)]);
    await bucket.progress('node-a', T0 + 2 * HOUR + 10 * MIN, T0 + 5 * HOUR);
    await bucket.progress('node-b', T0 + 5 * HOUR, T0 + 5 * HOUR);
    const res = await rollup(bucket, out, T0 + 5 * HOUR, { graceMs: 5 * MIN });
    expect(res.report.watermark).toBe(at(T0 + 2 * HOUR + 5 * MIN));
    expect(res.report.nodes.map((n) => [n.node, n.stale, n.holds_watermark])).toEqual([
      ['node-a', false, true],
      ['node-b', false, false],
    ]);
    const rowsA = res.hourly.filter((r) => r.resource_id === 'vm-a').map((r) => [r.hour, r.ms, r.final]);
    expect(rowsA).toEqual([
      [at(T0), HOUR, true],
      [at(T0 + HOUR), HOUR, true],
      [at(T0 + 2 * HOUR), 5 * MIN, false],
    ]);
    const rowsB = res.hourly.filter((r) => r.resource_id === 'vm-b').map((r) => [r.hour, r.ms, r.final, r.version]);
    expect(rowsB).toEqual([
      [at(T0), 30 * MIN, true, 1],
      [at(T0 + HOUR), HOUR, true, 1],
      [at(T0 + 2 * HOUR), HOUR, false, 0],
      [at(T0 + 3 * HOUR), HOUR, false, 0],
      [at(T0 + 4 * HOUR), 30 * MIN, false, 0],
    ]);
  });

  it('a VM stopped and started again within one hour, then running on: later runs still bill that hour in full', async () => {
    const { bucket, out } = setup();
    const w = new TestWriter('n1', 'w1');
    // Run 1 sees the stop at 10:30 and the restart at 10:45; the watermark stops at 10:50.
    await bucket.put([w.start('vm1', T0), w.stop('vm1', T0 + 30 * MIN), w.start('vm1', T0 + 45 * MIN)]);
    await bucket.progress('n1', T0 + 50 * MIN, T0 + 50 * MIN);
    const first = await rollup(bucket, out, T0 + 50 * MIN, { graceMs: 0 });
    expect(msOf(first.hourly, 'vm1')).toBe(35 * MIN);
    // Run 2: only new events of a running VM. The open interval goes on, and the hour it shares
    // with the closed one is summed over both (30 + 15 minutes), not over the open one alone.
    await bucket.put([w.running('vm1', T0 + 90 * MIN)]);
    await bucket.progress('n1', T0 + 2 * HOUR, T0 + 2 * HOUR);
    const second = await rollup(bucket, out, T0 + 2 * HOUR, { graceMs: 0 });
    expect(second.hourly.filter((r) => r.resource_id === 'vm1').map((r) => [r.hour, r.ms, r.final])).toEqual([
      [at(T0), 45 * MIN, true],
      [at(T0 + HOUR), HOUR, true],
    ]);
    expect(second.intervals.filter((i) => i.resource_id === 'vm1').map((i) => [i.start, i.end])).toEqual([
      [at(T0), at(T0 + 30 * MIN)],
      [at(T0 + 45 * MIN), null],
    ]);
  });

  it('a stale node stops holding the watermark, its open interval ends at the last evidence; when it returns, final hours are revised', async () => {
    const { bucket, out } = setup();
    const live = new TestWriter('live', 'wl');
    const gone = new TestWriter('gone', 'wg');
    await bucket.put([live.start('vm-live', T0)]);
    await bucket.put([gone.start('vm-gone', T0), gone.running('vm-gone', T0 + HOUR + 30 * MIN)]);
    await bucket.progress('gone', T0 + HOUR + 40 * MIN, T0 + HOUR + 40 * MIN);
    await bucket.progress('live', T0 + 10 * HOUR, T0 + 10 * HOUR);
    const now = T0 + 10 * HOUR;
    const first = await rollup(bucket, out, now, { graceMs: 0, staleAfterMs: 6 * HOUR });
    expect(first.report.nodes.find((n) => n.node === 'gone')).toMatchObject({ stale: true, holds_watermark: false });
    expect(first.report.watermark).toBe(at(T0 + 10 * HOUR));
    const goneIv = first.intervals.find((i) => i.resource_id === 'vm-gone')!;
    // Last evidence: the node vouched for everything before complete_through (1h40m), later than its last baseline.
    expect(goneIv).toMatchObject({ end: at(T0 + HOUR + 40 * MIN), unconfirmed_end: true, close_reason: 'stale-node' });
    expect(first.report.stale_intervals.count).toBe(1);
    expect(msOf(first.hourly, 'vm-gone')).toBe(HOUR + 40 * MIN);
    expect(first.hourly.filter((r) => r.resource_id === 'vm-gone').every((r) => r.final && r.version === 1)).toBe(true);

    // The node comes back: the VM actually stopped at 3h15m.
    await bucket.put([gone.stop('vm-gone', T0 + 3 * HOUR + 15 * MIN)]);
    await bucket.progress('gone', T0 + 11 * HOUR, T0 + 11 * HOUR);
    const second = await rollup(bucket, out, T0 + 11 * HOUR, { graceMs: 0, staleAfterMs: 6 * HOUR });
    expect(second.intervals.find((i) => i.resource_id === 'vm-gone')).toMatchObject({ end: at(T0 + 3 * HOUR + 15 * MIN), unconfirmed_end: false, close_reason: 'stop-user' });
    expect(second.report.late_entries.count).toBe(1);
    const rows = second.hourly.filter((r) => r.resource_id === 'vm-gone').map((r) => [r.hour, r.ms, r.version, r.revises, r.previous_ms]);
    expect(rows).toEqual([
      [at(T0), HOUR, 1, null, null],
      [at(T0 + HOUR), HOUR, 2, 1, 40 * MIN],
      [at(T0 + 2 * HOUR), HOUR, 1, 0, 0],
      [at(T0 + 3 * HOUR), 15 * MIN, 1, 0, 0],
    ]);
    expect(second.revisions).toHaveLength(3);
    const log = fs.readFileSync(path.join(out, 'revisions.ndjson'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as HourlyRow);
    expect(log.map((r) => [r.hour, r.version])).toEqual([
      [at(T0 + HOUR), 2],
      [at(T0 + 2 * HOUR), 1],
      [at(T0 + 3 * HOUR), 1],
    ]);
    expect(second.report.watermark).toBe(at(T0 + 10 * HOUR)); // still held by the live node
  });

  it('a re-run with no new objects reads nothing and writes byte-identical outputs', async () => {
    const { bucket, out } = setup();
    const w = new TestWriter('n1', 'w1');
    await bucket.put([w.start('vm1', T0), w.running('vm2', T0 + 5 * MIN), w.stop('vm1', T0 + 90 * MIN), w.stop('vm3', T0 + 95 * MIN)]);
    await bucket.progress('n1', T0 + HOUR, T0 + 2 * HOUR);
    const now = T0 + 2 * HOUR;
    const first = await rollup(bucket, out, now);
    const files = ['intervals.ndjson', 'hourly.ndjson', 'revisions.ndjson', 'report.json', 'state.json'];
    const before = files.map((f) => fs.readFileSync(path.join(out, f)));
    const second = await rollup(bucket, out, now);
    expect(second.run.objects_read).toBe(0);
    expect(first.run.objects_read).toBe(1);
    files.forEach((f, i) => expect(fs.readFileSync(path.join(out, f)).equals(before[i]!), f).toBe(true));
  });

  it('a second concurrent run on the same state is refused with a clear message', async () => {
    const { bucket, out } = setup();
    const { lockState, RollupLockedError } = await import('metering-ledger/sink');
    const release = await lockState(path.join(out, 'state.json'));
    try {
      await expect(rollup(bucket, out, T0)).rejects.toBeInstanceOf(RollupLockedError);
      await expect(rollup(bucket, out, T0)).rejects.toThrow(/another metering rollup is running/);
    } finally {
      await release();
    }
    await expect(rollup(bucket, out, T0)).resolves.toBeDefined();
  });

  it('bad objects and lines are reported with their object name and offset and skipped, never fatal', async () => {
    const { bucket, out } = setup();
    const w = new TestWriter('n1', 'w1');
    const good = w.start('vm1', T0);
    const seg = bucket.segment();
    const goodLine = JSON.stringify(good) + '\n';
    const stopLine = JSON.stringify(w.stop('vm1', T0 + 10 * MIN)) + '\n';
    const body = goodLine + 'not json at all\n' + '{"v":1,"id":"x"}\n' + stopLine + '{"v":1,"torn';
    const name = await bucket.putBytes('n1', seg, Buffer.from(body));
    // A .gz object whose bytes are gzip garbage, an object under an unknown name, a quarantine object, a broken progress.
    const gzName = 'ledger/node=n1/dt=2026-11-01/' + seg.replace('.jsonl', '') + '.g1.0000000000000000-0000000000000010.ndjson.gz';
    await bucket.dest.putIfAbsent(gzName, Buffer.from([0x1f, 0x8b, 1, 2, 3, 4]));
    await bucket.dest.putIfAbsent('ledger/node=n1/dt=2026-11-01/stray.txt', Buffer.from('hello'));
    await bucket.putBytes('n1', seg, Buffer.from('garbage one\ngarbage two\n'), { cls: 'quarantine' });
    await bucket.dest.put('nodes/n2.json', Buffer.from('{"v":1,'));
    await bucket.progress('n1', T0 + HOUR, T0 + HOUR);
    const res = await rollup(bucket, out, T0 + HOUR);
    expect(res.report.invalid_lines.count).toBe(3);
    expect(res.report.invalid_lines.items.map((i) => [i.object, i.offset])).toEqual([
      [name, goodLine.length],
      [name, goodLine.length + 'not json at all\n'.length],
      [name, body.length - '{"v":1,"torn'.length],
    ]);
    expect(res.report.invalid_lines.items[2]!.reason).toMatch(/torn/);
    expect(res.report.objects.bad.map((b) => b.object).sort()).toEqual([gzName, 'nodes/n2.json'].sort());
    expect(res.report.objects.bad.find((b) => b.object === gzName)!.error).toMatch(/gzip/);
    expect(res.report.objects.unknown).toEqual(['ledger/node=n1/dt=2026-11-01/stray.txt']);
    expect(res.report.quarantined_lines).toBe(2);
    // Listed but unreadable: fail closed, it holds the watermark (rules v2), never silently stale.
    expect(res.report.nodes.find((n) => n.node === 'n2')).toMatchObject({ stale: false, holds_watermark: true, progress_error: expect.stringMatching(/JSON/) });
    expect(msOf(res.hourly, 'vm1')).toBe(10 * MIN);
    // The broken object is not marked read: it is retried (and reported again) on the next run.
    const again = await rollup(bucket, out, T0 + HOUR);
    expect(again.report.objects.bad.map((b) => b.object)).toContain(gzName);
    expect(again.report.invalid_lines.count).toBe(3);
  });

  it('reports per-writer seq gaps, including a tail the shipper says it shipped', async () => {
    const { bucket, out } = setup();
    const w = new TestWriter('n1', 'w1');
    const e1 = w.start('vm1', T0);
    const e2 = w.running('vm1', T0 + MIN);
    w.seq += 2; // seq 3 and 4 never arrive
    const e5 = w.stop('vm1', T0 + 2 * MIN);
    await bucket.put([e1, e2, e5]);
    const v = new TestWriter('n1', 'w2');
    v.seq = 4; // this writer's 1..4 never arrive
    await bucket.put([v.start('vm2', T0)]);
    await bucket.progress('n1', T0 + HOUR, T0 + HOUR, { w1: 7, w2: 5 });
    const res = await rollup(bucket, out, T0 + HOUR);
    expect(res.report.seq_gaps.items).toEqual([
      { writer: 'w1', node: 'n1', missing: [[3, 4], [6, 7]], count: 4 },
      { writer: 'w2', node: 'n1', missing: [[1, 4]], count: 4 },
    ]);
    // A gap filled by a later object disappears from the report.
    w.seq = 2;
    await bucket.put([w.running('vm1', T0 + MIN + 1), w.running('vm1', T0 + MIN + 2)]);
    const res2 = await rollup(bucket, out, T0 + HOUR);
    expect(res2.report.seq_gaps.items[0]).toEqual({ writer: 'w1', node: 'n1', missing: [[6, 7]], count: 2 });
  });

  it('late data for a final hour becomes a revision, never a silent rewrite', async () => {
    const { bucket, out } = setup();
    const w = new TestWriter('n1', 'w1');
    const start = w.start('vm1', T0 + 10 * MIN);
    const stop = w.stop('vm1', T0 + 50 * MIN);
    await bucket.put([w.start('vm0', T0), w.stop('vm0', T0 + 30 * MIN), start]);
    await bucket.progress('n1', T0 + 2 * HOUR, T0 + 2 * HOUR);
    const first = await rollup(bucket, out, T0 + 2 * HOUR, { graceMs: 0 });
    expect(first.hourly.filter((r) => r.resource_id === 'vm1').map((r) => [r.hour, r.ms, r.version])).toEqual([
      [at(T0), 50 * MIN, 1],
      [at(T0 + HOUR), HOUR, 1],
    ]);
    await bucket.put([stop]);
    const second = await rollup(bucket, out, T0 + 2 * HOUR, { graceMs: 0 });
    expect(second.report.late_entries.count).toBe(1);
    expect(second.hourly.filter((r) => r.resource_id === 'vm1').map((r) => [r.hour, r.ms, r.final, r.version, r.revises, r.previous_ms])).toEqual([
      [at(T0), 40 * MIN, true, 2, 1, 50 * MIN],
      [at(T0 + HOUR), 0, true, 2, 1, HOUR],
    ]);
    // vm0 was final and unchanged: same row, same version, not re-emitted as a revision.
    expect(second.hourly.find((r) => r.resource_id === 'vm0')).toMatchObject({ ms: 30 * MIN, version: 1, revises: null });
    expect(second.revisions.map((r) => r.resource_id)).toEqual(['vm1', 'vm1']);
  });

  it('retain only decides what is too late: full history is kept, results equal a run that never forgets', async () => {
    const { bucket, out, root } = setup();
    const w = new TestWriter('n1', 'w1');
    const batches = [
      [w.start('vm1', T0), w.start('vm2', T0 + 10 * MIN)],
      [w.stop('vm1', T0 + 2 * HOUR), w.running('vm2', T0 + 3 * HOUR)],
      [w.start('vm1', T0 + 5 * HOUR), w.stop('vm2', T0 + 6 * HOUR)],
    ];
    const outs = [out, path.join(root, 'out-long-retain')];
    const results = [];
    for (let b = 0; b < batches.length; b++) {
      await bucket.put(batches[b]!);
      await bucket.progress('n1', T0 + (b + 1) * 3 * HOUR, T0 + (b + 1) * 3 * HOUR);
      for (const [i, o] of outs.entries()) {
        results[i] = await rollup(bucket, o, T0 + (b + 1) * 3 * HOUR, { graceMs: 0, retainMs: i === 0 ? HOUR : 30 * 86_400_000 });
      }
    }
    expect(results[0]!.report.horizon).toBe(at(T0 + 8 * HOUR));
    expect(results[0]!.intervals).toEqual(results[1]!.intervals);
    expect(results[0]!.hourly).toEqual(results[1]!.hourly);
    // The state file is ndjson: one ["entry", record] line per entry id, the kept copy with its location.
    const entries = fs.readFileSync(path.join(out, 'state.json'), 'utf8').trimEnd().split('\n').slice(1).map((l) => JSON.parse(l) as unknown[]).filter((r) => r[0] === 'entry');
    expect(entries).toHaveLength(6);
    // A stop older than the horizon still ends its interval; a start that old is too late.
    await bucket.put([w.stop('vm1', T0 + 6 * HOUR), w.start('vm3', T0 + 6 * HOUR)]);
    const late = await rollup(bucket, out, T0 + 9 * HOUR, { graceMs: 0, retainMs: HOUR });
    expect(late.report.too_late_entries.count).toBe(1);
    expect(late.report.too_late_entries.items[0]!.id).not.toBe(undefined);
    expect(late.intervals.filter((i) => i.resource_id === 'vm1').map((i) => [i.start, i.end])).toEqual([
      [at(T0), at(T0 + 2 * HOUR)],
      [at(T0 + 5 * HOUR), at(T0 + 6 * HOUR)],
    ]);
    expect(late.intervals.some((i) => i.resource_id === 'vm3')).toBe(false);
    expect(late.revisions.map((r) => [r.resource_id, r.hour, r.ms, r.previous_ms])).toEqual([
      ['vm1', at(T0 + 6 * HOUR), 0, HOUR],
      ['vm1', at(T0 + 7 * HOUR), 0, HOUR],
      ['vm1', at(T0 + 8 * HOUR), 0, HOUR],
    ]);
  });

  it('migrates a state file of rules v1 (version 2): keeps what was published, re-reads every object, revises what changed', async () => {
    const { bucket, out } = setup();
    const a = new TestWriter('node-a', 'w-z');
    const b = new TestWriter('node-b', 'w-a');
    await bucket.put([a.start('vm1', T0), a.stop('vm1', T0 + HOUR)]);
    await bucket.put([b.start('vm1', T0 + HOUR)]);
    await bucket.progress('node-a', T0 + 3 * HOUR, T0 + 3 * HOUR);
    await bucket.progress('node-b', T0 + 3 * HOUR, T0 + 3 * HOUR);
    // What rules v1 published: vm1 on node-a for the first hour only (B's start was taken for a duplicate).
    // The row key of hourly-rollup.ts: tab-separated, numbers prefixed by their digit count.
    const ord = (n: number) => String(String(n).length).padStart(2, '0') + String(n);
    const key = (hour: number, node: string) => [ord(hour), 'vm.compute', 'vm1', node, '\ncloud-hypervisor', ord(2), ord(4 * 1024 ** 3), ord(20 * 1024 ** 3)].join('\t');
    const v2 = [
      { v: 2, source: bucket.dir, watermark: T0 + 3 * HOUR, horizon: T0 - 4 * 24 * HOUR, totals: {}, findings: {} },
      ['object', 'ledger/old-name-that-no-longer-matters', { entries: 3, invalid: 0 }],
      ['published', key(T0, 'node-a'), HOUR],
      ['end', 2],
    ];
    fs.mkdirSync(out, { recursive: true });
    fs.writeFileSync(path.join(out, 'state.json'), v2.map((l) => JSON.stringify(l)).join('\n') + '\n');
    const res = await rollup(bucket, out, T0 + 3 * HOUR, { graceMs: 0 });
    expect(res.run.objects_read).toBe(2);
    expect(res.report.late_entries.count).toBe(0);
    const first = res.hourly.find((r) => r.hour === at(T0) && r.node === 'node-a')!;
    expect(first).toMatchObject({ ms: HOUR, version: 1, revises: null });
    // Hours 1 and 2 on node-b appear in hours already final: version 1 revising nothing (0).
    expect(res.revisions.map((r) => [r.hour, r.node, r.ms, r.revises, r.previous_ms])).toEqual([
      [at(T0 + HOUR), 'node-b', HOUR, 0, 0],
      [at(T0 + 2 * HOUR), 'node-b', HOUR, 0, 0],
    ]);
    const again = await rollup(bucket, out, T0 + 3 * HOUR, { graceMs: 0 });
    expect(again.run.objects_read).toBe(0);
    expect(again.revisions).toEqual([]);
  });

  it('a late event that lands before an already-closed interval re-plays the timeline (start moves earlier, a start becomes a duplicate)', async () => {
    const { bucket, out } = setup();
    const w1 = new TestWriter('n1', 'w1');
    const w2 = new TestWriter('n1', 'w2');
    await bucket.put([w1.start('vm1', T0 + 2 * HOUR, { cpu: 4 }), w1.stop('vm1', T0 + 3 * HOUR)]);
    await bucket.progress('n1', T0 + 5 * HOUR, T0 + 5 * HOUR);
    const first = await rollup(bucket, out, T0 + 5 * HOUR, { graceMs: 0 });
    expect(first.intervals.map((i) => [i.start, i.end, i.shape.cpu])).toEqual([[at(T0 + 2 * HOUR), at(T0 + 3 * HOUR), 4]]);
    await bucket.put([w2.start('vm1', T0 + HOUR + 30 * MIN, { cpu: 1 })]);
    const second = await rollup(bucket, out, T0 + 5 * HOUR, { graceMs: 0 });
    expect(second.intervals.map((i) => [i.start, i.end, i.shape.cpu])).toEqual([[at(T0 + HOUR + 30 * MIN), at(T0 + 3 * HOUR), 1]]);
    expect(second.report.duplicate_starts.count).toBe(1);
    // The cpu=4 row of 02:00 is withdrawn, the cpu=1 rows appear: each an explicit revision.
    expect(second.hourly.map((r) => [r.hour, r.cpu, r.ms, r.version, r.revises])).toEqual([
      [at(T0 + HOUR), 1, 30 * MIN, 1, 0],
      [at(T0 + 2 * HOUR), 1, HOUR, 1, 0],
      [at(T0 + 2 * HOUR), 4, 0, 2, 1],
    ]);
  });

  it('fails closed on a state file it cannot trust (corrupt, or another source)', async () => {
    const { bucket, out, root } = setup();
    const { StateFileError } = await import('metering-ledger/sink');
    await rollup(bucket, out, T0);
    await expect(runRollup({ source: path.join(root, 'elsewhere'), out, now: T0 })).rejects.toThrow(/belongs to source/);
    // A mistyped source directory is an error, not "nothing shipped" (which would finalise empty hours).
    await expect(runRollup({ source: path.join(root, 'typo'), out: path.join(root, 'out-typo'), now: T0 })).rejects.toThrow(/does not exist/);
    expect(fs.existsSync(path.join(root, 'out-typo', 'hourly.ndjson'))).toBe(false);
    const stateFile = path.join(out, 'state.json');
    const good = fs.readFileSync(stateFile, 'utf8');
    fs.writeFileSync(stateFile, '{"v":2,"sour');
    await expect(rollup(bucket, out, T0)).rejects.toBeInstanceOf(StateFileError);
    await expect(rollup(bucket, out, T0)).rejects.toThrow(/not valid JSON/);
    // Cut short after a complete line (no end line), or from an older version: refused too.
    fs.writeFileSync(stateFile, good.split('\n')[0] + '\n');
    await expect(rollup(bucket, out, T0)).rejects.toThrow(/cut short/);
    fs.writeFileSync(stateFile, good.replace('"v":3', '"v":1'));
    await expect(rollup(bucket, out, T0)).rejects.toThrow(/has version 1/);
    fs.writeFileSync(stateFile, good);
    await expect(rollup(bucket, out, T0)).resolves.toBeDefined();
  });
  it('entries from a broken clock (far from their segment\'s creation) are reported as clock skew and never billed', async () => {
    const { bucket, out } = setup();
    const w = new TestWriter('n1', 'w1');
    const DAY = 24 * HOUR;
    const epochReset = Date.UTC(2000, 0, 1); // an RTC reset to its epoch
    const farFuture = T0 + 400 * DAY; // a year ahead
    // All three in one segment created at T0: only the one stamped near T0 is plausible.
    await bucket.put([w.start('vm-old', epochReset), w.start('vm-ok', T0 + 10 * MIN), w.stop('vm-ok', farFuture), w.start('vm-future', farFuture)]);
    await bucket.progress('n1', T0 + 2 * HOUR, T0 + 2 * HOUR);
    const res = await rollup(bucket, out, T0 + 2 * HOUR, { graceMs: 0 });
    expect(res.report.clock_skew_entries.count).toBe(3);
    expect(res.report.clock_skew_entries.items.map((f) => f.emitted_at).sort()).toEqual([at(epochReset), at(farFuture), at(farFuture)]);
    expect(res.report.max_skew_ms).toBe(30 * DAY);
    // vm-ok is open (its far-future stop was not believed) and counts to the watermark; the others bill nothing.
    expect(res.intervals.map((i) => [i.resource_id, i.end])).toEqual([['vm-ok', null]]);
    expect(msOf(res.hourly, 'vm-ok')).toBe(2 * HOUR - 10 * MIN);
    expect(res.hourly.every((r) => r.resource_id === 'vm-ok')).toBe(true);
    // Seq coverage still counts them as received: a broken clock is not a lost entry.
    expect(res.report.seq_gaps.missing).toBe(0);
    // A wider window believes them (a deliberate backfill).
    const wide = await rollup(bucket, path.join(out, '..', 'wide'), T0 + 2 * HOUR, { graceMs: 0, maxSkewMs: 30 * 365 * DAY });
    expect(wide.report.clock_skew_entries.count).toBe(0);
  });
});
