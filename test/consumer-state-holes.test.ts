/**
 * A run's deletes must cost what they delete, not the size of the history. DuckDB keeps, for every
 * vector (2,048 rows) of a table with a deleted row, a delete list of 16 KiB in memory whenever the
 * table is read, pinned while it is scanned. Each run replaces every running VM's open interval (and
 * its provisional hours); when the rules inserted those rows interleaved with the closed ones, each
 * run left a hole in every vector it had written. At 100 M entries every vector of the 45 M
 * intervals had one: a scan of `metering_intervals` alone needed 350 MiB, and the last run of a
 * 1 GiB rollup failed out of memory writing its first intervals partition.
 *
 * Here: VMs that stop and start a few times between runs, so each run writes mostly closed
 * intervals and one open interval per VM, and replaces the open ones of the run before. Then the
 * vectors of the history tables that hold both live and deleted rows (rowid gaps) are counted: with
 * the replaceable rows inserted together they are the few at the edges of each run's rows.
 */
import * as path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { HOUR, MIN, T0, TestBucket, TestWriter } from './support/consumer-bucket.js';
import { spawnCli, waitExit } from './support/spawn.js';
import { tempDir } from './support/tmp.js';

const VMS = 2_000;
const RUNS = 3;
/**
 * Stop/start cycles of each VM between two runs: closed intervals per open one. A run then writes
 * more than a row group (122,880 rows) of intervals, replacing under a third of the rows before it:
 * too few for DuckDB's checkpoint to merge row groups (MAX_MERGE_COUNT 3), which would remove them.
 */
const CYCLES = 62;
const VECTOR = 2_048;

interface Holes {
  /** Vectors (by rowid) that hold both live rows and gaps left by deleted rows. */
  holey: number;
  /** Rows deleted and still taking their place (rowid gaps below the highest rowid). */
  deleted: number;
  /** Vectors the table spans. */
  vectors: number;
}

async function holesIn(state: string, tables: readonly string[]): Promise<Record<string, Holes>> {
  const { DuckDBInstance } = await import('@duckdb/node-api');
  const instance = await DuckDBInstance.create(state, { access_mode: 'READ_ONLY' });
  const connection = await instance.connect();
  try {
    const result: Record<string, Holes> = {};
    for (const table of tables) {
      const r = await connection.runAndReadAll(`
        WITH v AS (SELECT rowid // ${VECTOR} AS v, COUNT(*) AS n FROM ${table} GROUP BY v),
        top AS (SELECT MAX(rowid) AS m, COUNT(*) AS n FROM ${table})
        SELECT (SELECT COUNT(*) FROM v, top WHERE v.n < ${VECTOR} AND v.v < top.m // ${VECTOR}) AS holey,
               (SELECT m + 1 - n FROM top) AS deleted,
               (SELECT m // ${VECTOR} + 1 FROM top) AS vectors`);
      const [holey, deleted, vectors] = r.getRows()[0]!.map(Number);
      result[table] = { holey: holey!, deleted: deleted!, vectors: vectors! };
    }
    return result;
  } finally {
    connection.closeSync();
    instance.closeSync();
  }
}

describe('state tables after many runs', () => {
  it(`rows each run replaces leave holes in few vectors (${VMS} VMs, ${RUNS} runs)`, async () => {
    const t = tempDir('state-holes');
    onTestFinished(t.cleanup);
    const bucket = new TestBucket(path.join(t.dir, 'bucket'));
    const out = path.join(t.dir, 'out');
    const writer = new TestWriter('node-a', 'w1');
    const ids = Array.from({ length: VMS }, (_, v) => `vm-${String(v).padStart(6, '0')}`);
    // Run 0 starts the VMs; run 1 comes 69 hours later, so it publishes ~70 hours of each (more than
    // a row group of hourly rows), the last one provisional; run 2 replaces those.
    for (let run = 0; run < RUNS; run++) {
      const base = T0 + (run === 0 ? 0 : 68 + run) * HOUR;
      const entries = ids.flatMap((id, v) => {
        const t0 = base + (v % 30) * 1000;
        // Run 0 starts each VM; later runs stop and start it CYCLES times (the last start stays open).
        if (run === 0) return [writer.start(id, t0)];
        return Array.from({ length: CYCLES }, (_, c) => [writer.stop(id, t0 + c * 20_000), writer.start(id, t0 + c * 20_000 + 10_000)]).flat();
      });
      for (let i = 0; i < entries.length; i += 20_000) await bucket.put(entries.slice(i, i + 20_000));
      const r = await waitExit(spawnCli(['rollup', '--source', bucket.dir, '--out', out, '--now', new Date(base + 55 * MIN).toISOString()], { env: { ...process.env, METERING_LOG_LEVEL: 'warn' } }));
      expect(r.code, r.stderr).toBe(0);
    }
    const holes = await holesIn(path.join(out, 'state.duckdb'), ['metering_fold_intervals', 'metering_intervals', 'metering_hourly']);
    for (const [table, h] of Object.entries(holes)) {
      // More than a row group (60 vectors), so a hole in each vector could not hide.
      expect(h.vectors, `${table}: vectors`).toBeGreaterThan(60);
      // The rows each run replaced sit together: a few vectors at the edges of a run's rows hold
      // holes, not every vector it wrote (before: the whole row group of run 1, 60 vectors).
      expect(h.holey, `${table}: vectors with holes, of ${h.vectors} (${h.deleted} rows deleted)`).toBeLessThanOrEqual(4 * RUNS);
    }
  }, 600_000);
});
