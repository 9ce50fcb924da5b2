/**
 * A one-run over a long backlog takes many fold steps (sink/sql/rules/40_fold.bucket.sql, one per
 * bucket of resources), which the engine runs on one DuckDB thread.
 * - Their memory must not add up: a 30 M entry run once failed out of memory in a fold step after
 *   ~150 of them, because every step left tables and partial row groups in DuckDB's memory until
 *   the run's commit. Here: hundreds of steps under a small memory limit.
 * - A step that fails must fail with its own error, not with the thread setting put back after it.
 * - The steps aggregate a resource's events in no order (an ordered ARRAY_AGG kept a vector-sized
 *   sort buffer per resource in DuckDB); metering_fold sorts them, in both engines.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import type { LedgerEntry } from 'metering-ledger';
import { bigQueryFoldFunction, runRollup } from 'metering-ledger/sink';
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

describe('fold order', () => {
  it('events stored out of time order are folded in time order', async () => {
    const t = tempDir('fold-order');
    onTestFinished(t.cleanup);
    const bucket = new TestBucket(`${t.dir}/bucket`);
    const writer = new TestWriter('node-a', 'w1');
    // One object, the lines in reverse time order (a restored ledger, a writer with a wrong clock
    // that was fixed): the fold must see start, baseline, stop, and bill one closed interval.
    await bucket.put([writer.stop('vm-1', T0 + 2 * HOUR), writer.running('vm-1', T0 + HOUR), writer.start('vm-1', T0)]);
    const outcome = await runRollup({ source: `${t.dir}/bucket`, out: `${t.dir}/out`, now: T0 + 2 * 24 * HOUR, collectRows: true });
    expect(outcome.rows!.intervals.map((i) => [i.start, i.end])).toEqual([[new Date(T0).toISOString(), new Date(T0 + 2 * HOUR).toISOString()]]);
    expect(outcome.report.orphan_stops.count).toBe(0);
  });

  it("BigQuery's metering_fold sorts its events too", () => {
    // The UDF's JavaScript body as shipped, run here: the same source as DuckDB's metering_fold.
    const body = /LANGUAGE js AS r"""\n([\s\S]*)\n""";/.exec(bigQueryFoldFunction())![1]!;
    const fold = new Function('state', 'events', body) as (state: unknown, events: unknown[]) => { kind: string; start_ms: number | null; end_ms: number | null; anomaly_type: string | null }[];
    const event = (id: string, t: number, phase: string, seq: number) => ({ id, t, node: 'node-a', writer: 'w1', seq, phase, reason: phase === 'stop' ? 'stop-user' : 'boot', hypervisor: 'ch', cpu: 2, mem_bytes: 1, storage_bytes: 1 });
    const rows = fold(null, [event('c', T0 + 2 * HOUR, 'stop', 1), event('b', T0 + HOUR, 'running', 2), event('a', T0, 'start', 3)]);
    expect(rows.filter((r) => r.kind !== 'state').map((r) => [r.kind, r.start_ms, r.end_ms, r.anomaly_type])).toEqual([['interval', T0, T0 + 2 * HOUR, null]]);
  });
});
