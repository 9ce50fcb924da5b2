/**
 * A one-run over a long backlog takes many fold steps (sink/sql/rules/40_fold.bucket.sql, one per
 * bucket of resources). Their memory must not add up: a 30 M entry run once failed out of memory
 * in a fold step after ~150 of them, because every step left tables and partial row groups in
 * DuckDB's memory until the run's commit. Here: hundreds of steps under a small memory limit.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { LedgerEntry } from 'metering-ledger';
import { runRollup } from 'metering-ledger/sink';
import { HOUR, MIN, T0, TestBucket, TestWriter } from './support/consumer-bucket.js';
import { tempDir } from './support/tmp.js';

const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});

describe('fold steps', () => {
  it('hundreds of fold steps in one run fit a 64MiB memory limit on two threads', async () => {
    const t = tempDir('fold-memory');
    cleanups.push(t.cleanup);
    const bucket = new TestBucket(`${t.dir}/bucket`);
    const VMS = 600;
    const writer = new TestWriter('node-a', 'w1');
    const entries: LedgerEntry[] = [];
    for (let v = 0; v < VMS; v++) {
      const id = `vm-${String(v).padStart(4, '0')}`;
      const start = T0 + (v % 60) * MIN;
      entries.push(writer.start(id, start, { cpu: 2 }));
      for (let h = 1; h <= 8; h++) entries.push(writer.running(id, start + h * HOUR));
      entries.push(writer.stop(id, start + 9 * HOUR));
    }
    for (let i = 0; i < entries.length; i += 500) await bucket.put(entries.slice(i, i + 500));
    // A resource weighs its events + 100 (30_resources.sql): 10 events each, two VMs per bucket.
    const outcome = await runRollup({ source: bucket.dir, out: `${t.dir}/out`, now: T0 + 2 * 24 * HOUR, memoryLimit: '64MiB', threads: 2, bucketEvents: 220, collectRows: true });
    expect(outcome.run.entries_read).toBe(entries.length);
    expect(outcome.rows!.intervals).toHaveLength(VMS);
    expect(outcome.rows!.intervals.every((i) => i.end !== null)).toBe(true);
  }, 120_000);
});
