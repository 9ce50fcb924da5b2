/**
 * A run's deletes must cost what they delete, not the size of the history. DuckDB keeps, for every
 * vector (2,048 rows) of a table with a deleted row, a delete list of 16 KiB in memory whenever the
 * table is read, pinned while it is scanned. Each run replaces every running VM's open interval (and
 * its provisional hours); when the rules inserted those rows interleaved with the closed ones, each
 * run left a hole in every vector it had written. At 100 M entries every vector of the 45 M
 * intervals had one: a scan of `metering_intervals` alone needed ~390 MiB, and the last run of a
 * 1 GiB rollup failed out of memory writing its first intervals partition.
 *
 * Here: VMs that stop and start many times between runs, so each run writes mostly closed
 * intervals and one open interval per VM, and replaces the open ones of the run before. Then the
 * vectors of the history tables that hold both live and deleted rows (rowid gaps) are counted: with
 * the replaceable rows inserted together they are the few at the edges of each run's rows. And a
 * state of schema v3 (holes in every vector) is rebuilt by the migration to v4.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { HOUR, MIN, T0, TestBucket, TestWriter } from './support/consumer-bucket.js';
import { outputTexts } from './support/read-outputs.js';
import { spawnCli, waitExit } from './support/spawn.js';
import { withState } from './support/state-db.js';
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
const HISTORY_TABLES = ['metering_fold_intervals', 'metering_intervals', 'metering_hourly'] as const;

interface Holes {
  /** Vectors (by rowid) that hold both live rows and gaps left by deleted rows. */
  holey: number;
  /** Rows deleted and still taking their place (rowid gaps below the highest rowid). */
  deleted: number;
  /** Vectors the table spans. */
  vectors: number;
}

const holesIn = (state: string): Promise<Record<string, Holes>> =>
  withState(state, async (run) => {
    const result: Record<string, Holes> = {};
    for (const table of HISTORY_TABLES) {
      const [row] = await run(`
        WITH v AS (SELECT rowid // ${VECTOR} AS v, COUNT(*) AS n FROM ${table} GROUP BY v),
        top AS (SELECT MAX(rowid) AS m, COUNT(*) AS n FROM ${table})
        SELECT (SELECT COUNT(*) FROM v, top WHERE v.n < ${VECTOR} AND v.v < top.m // ${VECTOR}) AS holey,
               (SELECT m + 1 - n FROM top) AS deleted,
               (SELECT m // ${VECTOR} + 1 FROM top) AS vectors`);
      const [holey, deleted, vectors] = row!.map(Number);
      result[table] = { holey: holey!, deleted: deleted!, vectors: vectors! };
    }
    return result;
  });

async function rollup(bucket: string, out: string, now: number): Promise<void> {
  const r = await waitExit(spawnCli(['rollup', '--source', bucket, '--out', out, '--now', new Date(now).toISOString()], { env: { ...process.env, METERING_LOG_LEVEL: 'warn' } }));
  expect(r.code, r.stderr).toBe(0);
}

describe('state tables after many runs', () => {
  const t = tempDir('state-holes');
  const bucket = new TestBucket(path.join(t.dir, 'bucket'));
  const out = path.join(t.dir, 'out');
  let lastNow = 0;
  afterAll(t.cleanup);

  beforeAll(async () => {
    const writer = new TestWriter('node-a', 'w1');
    const ids = Array.from({ length: VMS }, (_, v) => `vm-${String(v).padStart(6, '0')}`);
    // Run 0 starts the VMs; run 1 comes 69 hours later, so it publishes ~70 hours of each (more than
    // a row group of hourly rows), the last one provisional; run 2 replaces those.
    for (let run = 0; run < RUNS; run++) {
      const base = T0 + (run === 0 ? 0 : 68 + run) * HOUR;
      const entries = ids.flatMap((id, v) => {
        const t0 = base + (v % 30) * 1000;
        // Later runs stop and start each VM CYCLES times (the last start stays open).
        if (run === 0) return [writer.start(id, t0)];
        return Array.from({ length: CYCLES }, (_, c) => [writer.stop(id, t0 + c * 20_000), writer.start(id, t0 + c * 20_000 + 10_000)]).flat();
      });
      for (let i = 0; i < entries.length; i += 20_000) await bucket.put(entries.slice(i, i + 20_000));
      lastNow = base + 55 * MIN;
      await rollup(bucket.dir, out, lastNow);
    }
  }, 600_000);

  it(`rows each run replaces leave holes in few vectors (${VMS} VMs, ${RUNS} runs)`, async () => {
    for (const [table, h] of Object.entries(await holesIn(path.join(out, 'state.duckdb')))) {
      // More than a row group (60 vectors), so a hole in each vector could not hide.
      expect(h.vectors, `${table}: vectors`).toBeGreaterThan(60);
      // The rows each run replaced sit together: a few vectors at the edges of a run's rows hold
      // holes, not every vector it wrote (before: the whole row group of run 1, 60 vectors).
      expect(h.holey, `${table}: vectors with holes, of ${h.vectors} (${h.deleted} rows deleted)`).toBeLessThanOrEqual(4 * RUNS);
    }
  });

  it('a v3 state, holes in every vector, is rebuilt by its next run (v4) and publishes the same', async () => {
    const c = tempDir('state-v3');
    onTestFinished(c.cleanup);
    const fresh = path.join(c.dir, 'fresh');
    const migrated = path.join(c.dir, 'v3');
    fs.cpSync(out, fresh, { recursive: true });
    fs.cpSync(out, migrated, { recursive: true });
    const state = path.join(migrated, 'state.duckdb');
    // What v3's rules left: a deleted row in every vector. The rows are moved, not lost: deleted where
    // they were and appended again (one a vector: too few for a checkpoint to merge row groups).
    await withState(state, async (run) => {
      await run('UPDATE metering_meta SET schema_version = 3');
      for (const table of HISTORY_TABLES) {
        await run(`CREATE TEMP TABLE moved AS SELECT * FROM ${table} WHERE rowid % ${VECTOR} = 1`);
        await run(`DELETE FROM ${table} WHERE rowid % ${VECTOR} = 1`);
        await run(`INSERT INTO ${table} SELECT * FROM moved`);
        await run('DROP TABLE moved');
      }
      await run('CHECKPOINT');
    });
    for (const [table, h] of Object.entries(await holesIn(state))) expect(h.holey, `${table} before`).toBeGreaterThan(60);

    // One more run on each: new events for a few VMs.
    const writer = new TestWriter('node-a', 'w2');
    await bucket.put(Array.from({ length: 10 }, (_, v) => writer.stop(`vm-${String(v).padStart(6, '0')}`, lastNow + 10 * MIN)));
    await rollup(bucket.dir, fresh, lastNow + HOUR);
    await rollup(bucket.dir, migrated, lastNow + HOUR);

    expect(await withState(state, (run) => run('SELECT schema_version FROM metering_meta'))).toEqual([[4n]]);
    for (const [table, h] of Object.entries(await holesIn(state))) expect(h.holey, `${table} after`).toBe(0);
    // The tables' definitions (NOT NULL included) and rows are those of a state that was never v3.
    const tables = (dir: string): Promise<unknown[][]> =>
      withState(path.join(dir, 'state.duckdb'), async (run) => {
        const result: unknown[][] = [];
        for (const table of HISTORY_TABLES) {
          result.push(...(await run(`SELECT sql FROM duckdb_tables() WHERE table_name = '${table}'`)));
          result.push(await run(`SELECT COUNT(*), SUM(hash(COLUMNS(*))) FROM ${table}`));
        }
        return result;
      });
    expect(await tables(migrated)).toEqual(await tables(fresh));
    expect(outputTexts(migrated)).toEqual(outputTexts(fresh));
  }, 600_000);
});
