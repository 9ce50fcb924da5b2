import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { runRollup, type HourlyRow, type RollupOptions } from 'metering-ledger/sink';
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
});
