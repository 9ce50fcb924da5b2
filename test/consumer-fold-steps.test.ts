/**
 * A one-run over a long backlog takes many fold steps (sink/sql/rules/40_fold.bucket.sql, one per
 * bucket of resources), which the engine runs on one DuckDB thread.
 * - Their memory must not add up: a 30 M entry run once failed out of memory in a fold step after
 *   ~150 of them, because every step left tables and partial row groups in DuckDB's memory until
 *   the run's commit. Here: hundreds of steps under a small memory limit.
 * - A step that fails must fail with its own error, not with the thread setting put back after it.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import type { LedgerEntry } from 'metering-ledger';
import { runRollup } from 'metering-ledger/sink';
import { HOUR, MIN, T0, TestBucket, TestWriter } from './support/consumer-bucket.js';
import { tempDir } from './support/tmp.js';

/** VMS VMs, each started, reporting hourly for 8 hours and stopped: 10 events each. */
async function fleet(dir: string, vms: number): Promise<LedgerEntry[]> {
  const bucket = new TestBucket(dir);
  const writer = new TestWriter('node-a', 'w1');
  const entries: LedgerEntry[] = [];
  for (let v = 0; v < vms; v++) {
    const id = `vm-${String(v).padStart(4, '0')}`;
    const start = T0 + (v % 60) * MIN;
    entries.push(writer.start(id, start, { cpu: 2 }));
    for (let h = 1; h <= 8; h++) entries.push(writer.running(id, start + h * HOUR));
    entries.push(writer.stop(id, start + 9 * HOUR));
  }
  for (let i = 0; i < entries.length; i += 500) await bucket.put(entries.slice(i, i + 500));
  return entries;
}

describe('fold steps', () => {
  it('hundreds of fold steps in one run fit a 64MiB memory limit on two threads', async () => {
    const t = tempDir('fold-memory');
    onTestFinished(t.cleanup);
    const VMS = 600;
    const entries = await fleet(`${t.dir}/bucket`, VMS);
    // A resource weighs its events + 100 (30_resources.sql): 10 events each, two VMs per bucket.
    const outcome = await runRollup({ source: `${t.dir}/bucket`, out: `${t.dir}/out`, now: T0 + 2 * 24 * HOUR, memoryLimit: '64MiB', threads: 2, bucketEvents: 220, collectRows: true });
    expect(outcome.run.entries_read).toBe(entries.length);
    expect(outcome.rows!.intervals).toHaveLength(VMS);
    expect(outcome.rows!.intervals.every((i) => i.end !== null)).toBe(true);
  }, 120_000);

  it('a fold step that fails reports its own error, and the run leaves no state', async () => {
    const t = tempDir('fold-error');
    onTestFinished(t.cleanup);
    await fleet(`${t.dir}/bucket`, 10);
    let steps = 0;
    const run = runRollup({
      source: `${t.dir}/bucket`,
      out: `${t.dir}/out`,
      now: T0 + 2 * 24 * HOUR,
      bucketEvents: 220,
      // The second step fails inside DuckDB, as an out-of-memory step would: the transaction aborts.
      onStatement: async (sql, execute, session) => {
        if (sql.includes('metering_fold(') && ++steps === 2) await session.run("SELECT CAST('not a number' AS INTEGER)");
        await execute();
      },
    });
    await expect(run).rejects.toThrow(/not a number/);
    expect(steps).toBe(2);
    // Fail closed: nothing was committed, so a run after it starts from scratch and succeeds.
    const again = await runRollup({ source: `${t.dir}/bucket`, out: `${t.dir}/out`, now: T0 + 2 * 24 * HOUR, bucketEvents: 220, collectRows: true });
    expect(again.run.entries_read).toBe(100);
    expect(again.rows!.intervals).toHaveLength(10);
  });
});
