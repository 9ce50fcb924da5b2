/**
 * State v3 keeps only (run, object, offset, digest, id) of each copy in `metering_entries`; v2 kept
 * every column of every copy, a second whole copy of the history beside `metering_kept`. A v2 state
 * is migrated in place by the next run. The fixture (test/fixtures/state-v2/README.md) is a real
 * v2 state, written by the consumer of commit 9e7026b over the hand-built fleet's first phase.
 *
 * Its next run, with copies that exercise every path of the lean copies (a third copy of an id,
 * a copy with other content, a copy that sorts first and so becomes the kept one), must publish
 * exactly what a state that was v3 from the start publishes.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { LedgerEntry } from 'metering-ledger';
import { parseLedgerBuffer } from 'metering-ledger';
import { DIALECTS, renderRules } from 'metering-ledger/sink';
import { HOUR, T0, TestBucket, TestWriter } from './support/consumer-bucket.js';
import { outputTexts } from './support/read-outputs.js';
import { spawnCli, waitExit } from './support/spawn.js';
import { withState } from './support/state-db.js';
import { tempDir } from './support/tmp.js';

const FIXTURE = path.join(import.meta.dirname, 'fixtures', 'state-v2');

interface Fixture {
  now: string;
  /** The objects' write times (the destination's clock, which the consumer trusts): git keeps none. */
  mtimes: Record<string, number>;
}

async function sql(file: string, statements: string[]): Promise<unknown[][]> {
  return withState(file, async (run) => {
    let last: unknown[][] = [];
    for (const s of statements) last = await run(s);
    return last;
  });
}


function rollup(source: string, out: string, now: number): Promise<{ code: number | null; stderr: string }> {
  return waitExit(spawnCli(['rollup', '--source', source, '--out', out, '--now', new Date(now).toISOString(), '--grace', '5m', '--stale-after', '6h']));
}

describe('state v2', () => {
  it('is migrated by its own statements, never part of every run (sink/sql/migrations/v3.sql)', () => {
    for (const dialect of DIALECTS) {
      const every = renderRules(dialect, { now_ms: 0, grace_ms: 0, stale_after_ms: 0, retain_ms: 0, max_skew_ms: 0, run: 1 }).map((s) => s.sql).join('\n');
      expect(every).not.toMatch(/ALTER TABLE|touched_copies/);
    }
  });

  it('is migrated by the next run, which publishes what a v3 state publishes', async () => {
    const t = tempDir('state-v2');
    onTestFinished(t.cleanup);
    const fixture = JSON.parse(fs.readFileSync(path.join(FIXTURE, 'mtimes.json'), 'utf8')) as Fixture;
    const source = path.join(t.dir, 'bucket');
    fs.cpSync(path.join(FIXTURE, 'bucket'), source, { recursive: true });
    for (const [name, ms] of Object.entries(fixture.mtimes)) fs.utimesSync(path.join(source, name), ms / 1000, ms / 1000);

    // The v2 state, pointed at this copy of its bucket (a state belongs to one source).
    const migrated = path.join(t.dir, 'out-v2');
    fs.cpSync(path.join(FIXTURE, 'out'), migrated, { recursive: true });
    const state = path.join(migrated, 'state.duckdb');
    fs.writeFileSync(state, gunzipSync(fs.readFileSync(`${state}.gz`)));
    fs.rmSync(`${state}.gz`);
    expect(await sql(state, [`UPDATE metering_meta SET source = '${source}'`, 'SELECT schema_version FROM metering_meta'])).toEqual([[2n]]);
    expect(((await sql(state, ["SELECT COUNT(*) FROM duckdb_columns() WHERE table_name = 'metering_entries'"])) as bigint[][])[0]![0]).toBe(19n);
    // v2's scratch table of every copy of the touched ids, whole (a view now).
    const scratch = "SELECT table_name FROM duckdb_tables() WHERE table_name = 'metering_touched_copies'";
    expect(await sql(state, [scratch])).toHaveLength(1);

    // The same first phase on a state that is v3 from the start.
    const fresh = path.join(t.dir, 'out-v3');
    const now = Date.parse(fixture.now);
    const first = await rollup(source, fresh, now);
    expect(first.code, first.stderr).toBe(0);

    // The second phase: more copies of the first phase's ids, and node-c comes back.
    const bucket = new TestBucket(source);
    const seen: LedgerEntry[] = [];
    for (const name of Object.keys(fixture.mtimes).filter((n) => n.startsWith('ledger/node=node-a/') && !n.endsWith('.gz')).sort()) {
      for (const r of parseLedgerBuffer(fs.readFileSync(path.join(source, name)))) if (r.type === 'entry') seen.push(r.entry);
    }
    expect(seen.length).toBeGreaterThanOrEqual(3);
    const [dup, other, third] = seen as [LedgerEntry, LedgerEntry, LedgerEntry];
    await bucket.put([dup]); // a third copy (the first phase has two): not kept, judged against both
    await bucket.put([{ ...other, shape: { ...other.shape, cpu: other.shape.cpu + 1 } }]); // same id, other content
    await bucket.put([third], { segment: bucket.segment(T0 - HOUR) }); // sorts before every copy: now the kept one
    await bucket.put([new TestWriter('node-c', 'wc1').stop('vm6', T0 + 6 * HOUR)]);
    await bucket.progress('node-c', T0 + 11 * HOUR, now + HOUR);

    const a = await rollup(source, fresh, now + HOUR);
    expect(a.code, a.stderr).toBe(0);
    const b = await rollup(source, migrated, now + HOUR);
    expect(b.code, b.stderr).toBe(0);

    expect(await sql(state, ['SELECT schema_version FROM metering_meta'])).toEqual([[4n]]);
    expect(await sql(state, [scratch])).toEqual([]);
    const columns = await sql(state, ["SELECT column_name FROM duckdb_columns() WHERE table_name = 'metering_entries' ORDER BY column_index"]);
    expect(columns.map((r) => r[0])).toEqual(['run', 'object', 'line_offset', 'digest', 'id']);
    const report = JSON.parse(fs.readFileSync(path.join(fresh, 'report.json'), 'utf8')) as { duplicates: number; conflicting_duplicates: { count: number } };
    expect(report.duplicates).toBe(5); // two in the first phase, three in the second
    expect(report.conflicting_duplicates.count).toBe(1);
    expect(outputTexts(migrated)).toEqual(outputTexts(fresh));
  }, 60_000);

  it('a state of a newer consumer fails closed (exit 2) and is left as it was', async () => {
    const t = tempDir('state-newer');
    onTestFinished(t.cleanup);
    const bucket = new TestBucket(path.join(t.dir, 'bucket'));
    const w = new TestWriter('node-a', 'w1');
    await bucket.put([w.start('vm-1', T0), w.stop('vm-1', T0 + HOUR)]);
    const out = path.join(t.dir, 'out');
    expect((await rollup(bucket.dir, out, T0 + 2 * HOUR)).code).toBe(0);
    const state = path.join(out, 'state.duckdb');
    await sql(state, ['UPDATE metering_meta SET schema_version = 5']);
    const before = fs.readFileSync(state);
    const r = await rollup(bucket.dir, out, T0 + 3 * HOUR);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/schema version 5.*newer consumer: upgrade metering-ledger/);
    expect(fs.readFileSync(state).equals(before)).toBe(true);
  }, 60_000);
});
