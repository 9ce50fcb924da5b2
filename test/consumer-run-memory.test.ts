/**
 * What one run holds in DuckDB's memory grows with the run, not with the history, and never as the
 * run's entries whole. 20_kept.sql once joined a run's copies, whole, with the few rows of `runs`
 * (one per run): DuckDB 1.5 counts no row written in the open transaction in its estimates
 * (duckdb/duckdb#21573), so once a state had runs on record it took the run's copies for the
 * smaller side and built its hash table on them, and materialised them once more for the two
 * references to them. A 100 M entry backlog failed out of memory there at ~25 M entries in, with
 * 1 GiB chunks. Here: the same shape, scaled to a small memory limit.
 */
import * as path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { LedgerEntry } from 'metering-ledger';
import { HOUR, MIN, T0, TestBucket, TestWriter } from './support/consumer-bucket.js';
import { readReport } from './support/read-outputs.js';
import { spawnCli, waitExit } from './support/spawn.js';
import { tempDir } from './support/tmp.js';

/** 50 k entries: at 64MiB the rules before the fix failed from ~20 k on; after it, 100 k pass. */
const VMS = 5_000;
const LIMIT = '64MiB';
/** One fold step's resources: before metering_fold sorted its events itself, 300 of 200 failed at 64MiB. */
const FOLD_VMS = 300;
const FOLD_EVENTS = 200;

async function rollup(bucket: string, out: string, now: number): Promise<{ code: number | null; stderr: string }> {
  const r = await waitExit(spawnCli(['rollup', '--source', bucket, '--out', out, '--now', new Date(now).toISOString(), '--memory-limit', LIMIT], { env: { ...process.env, METERING_LOG_LEVEL: 'warn' } }));
  return { code: r.code, stderr: r.stderr };
}

/**
 * `vms` VMs of `events` events each (a start, baselines `every` apart, a stop), the first starting at
 * `firstStart(v)`, put in objects of 20 000 entries. Returns the entries.
 */
async function putVms(bucket: TestBucket, writer: TestWriter, o: { vms: number; events: number; every: number; firstStart: (v: number) => number }): Promise<LedgerEntry[]> {
  const entries: LedgerEntry[] = [];
  for (let v = 0; v < o.vms; v++) {
    const id = `vm-${String(v).padStart(6, '0')}`;
    const start = o.firstStart(v);
    entries.push(writer.start(id, start, { cpu: 2 }));
    for (let k = 1; k < o.events - 1; k++) entries.push(writer.running(id, start + k * o.every));
    entries.push(writer.stop(id, start + (o.events - 1) * o.every));
  }
  for (let i = 0; i < entries.length; i += 20_000) await bucket.put(entries.slice(i, i + 20_000));
  return entries;
}

describe('memory of one run', () => {
  it(`a run of ${VMS * 10} entries after earlier runs fits --memory-limit ${LIMIT}`, async () => {
    const t = tempDir('run-memory');
    onTestFinished(t.cleanup);
    const bucket = new TestBucket(path.join(t.dir, 'bucket'));
    const out = path.join(t.dir, 'out');
    const writer = new TestWriter('node-a', 'w1');
    // Three small runs first: the state has runs on record, as every state but a first one has.
    for (let r = 0; r < 3; r++) {
      await bucket.put([writer.start(`early-${r}`, T0 + r * MIN), writer.stop(`early-${r}`, T0 + r * MIN + 30 * MIN)]);
      const early = await rollup(bucket.dir, out, T0 + 2 * HOUR);
      expect(early.code, early.stderr).toBe(0);
    }
    // Then a run of many entries: VMS VMs started, reporting hourly for 8 hours, stopped.
    const entries = await putVms(bucket, writer, { vms: VMS, events: 10, every: HOUR, firstStart: (v) => T0 + 3 * HOUR + (v % 60) * MIN });
    const big = await rollup(bucket.dir, out, T0 + 2 * 24 * HOUR);
    expect(big.stderr.match(/SQL rules \S+ failed: Out of Memory[^"]*/)?.[0] ?? '', 'no rule out of memory').toBe('');
    expect(big.code, big.stderr).toBe(0);
    expect(readReport(out).entries_read).toBe(6 + entries.length);
  }, 600_000);

  // A fold step aggregates each resource's events for metering_fold. With ORDER BY in that
  // ARRAY_AGG, DuckDB kept a sort buffer of a whole vector (2,048 rows of every column) per resource
  // with more than a few events: ~650 VMs of ~200 events in one step took over 300 MiB, and a 100 M
  // entry backlog failed out of memory in a fold step. Here: FOLD_VMS such VMs in one step.
  it(`a fold step over ${FOLD_VMS} VMs of ${FOLD_EVENTS} events each fits --memory-limit ${LIMIT}`, async () => {
    const t = tempDir('fold-memory');
    onTestFinished(t.cleanup);
    const bucket = new TestBucket(path.join(t.dir, 'bucket'));
    const out = path.join(t.dir, 'out');
    const writer = new TestWriter('node-a', 'w1');
    const entries = await putVms(bucket, writer, { vms: FOLD_VMS, events: FOLD_EVENTS, every: 5 * MIN, firstStart: (v) => T0 + (v % 60) * 1000 });
    const r = await rollup(bucket.dir, out, T0 + 2 * 24 * HOUR);
    expect(r.stderr.match(/SQL rules \S+ failed: Out of Memory[^"]*/)?.[0] ?? '', 'no rule out of memory').toBe('');
    expect(r.code, r.stderr).toBe(0);
    const report = readReport(out);
    expect(report.entries_read).toBe(entries.length);
    expect(report.intervals.total).toBe(FOLD_VMS);
  }, 600_000);
});
