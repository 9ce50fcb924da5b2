/**
 * An --out written by the earlier consumer (state.json and flat ndjson files) is carried over by the
 * engine's first run: every published row keeps its version, the revisions already emitted stay
 * emitted (revisions/run=000000/), every object is read again, and the result equals what the
 * earlier consumer (the reference model) would have published on the same objects.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { HOUR, MIN, TestBucket } from './support/consumer-bucket.js';
import { handBuiltFleet, FLEET_GRACE_MS, FLEET_STALE_AFTER_MS } from './support/twin-fleet.js';
import { spawnCli, waitExit } from './support/spawn.js';
import { tempDir } from './support/tmp.js';
import { runRollup as referenceRollup } from './reference/run-rollup.js';

const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});

/** Every row of one partitioned output, partitions in name order. */
function partitionRows(dir: string): unknown[] {
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .sort()
    .flatMap((part) =>
      fs
        .readdirSync(path.join(dir, part))
        .filter((f) => f.endsWith('.ndjson'))
        .flatMap((f) => fs.readFileSync(path.join(dir, part, f), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as unknown)),
    );
}

describe('carrying over a state of the earlier consumer', () => {
  it('keeps published versions and emitted revisions, re-reads everything, and then goes on incrementally', async () => {
    const t = tempDir('consumer-migration');
    cleanups.push(t.cleanup);
    const bucket = new TestBucket(path.join(t.dir, 'bucket'));
    const legacyOut = path.join(t.dir, 'out');
    const fleet = await handBuiltFleet(bucket);
    const settings = { graceMs: FLEET_GRACE_MS, staleAfterMs: FLEET_STALE_AFTER_MS };
    // The earlier consumer's two runs: its stale node returns and revises final hours (versions 2).
    await referenceRollup({ source: bucket.dir, out: legacyOut, now: fleet.now, ...settings });
    const later = await fleet.comeBack();
    const reference = await referenceRollup({ source: bucket.dir, out: legacyOut, now: later, ...settings });
    expect(reference.revisions.length).toBeGreaterThan(0);
    expect(reference.hourly.some((h) => h.version === 2)).toBe(true);
    const legacyRevisions = fs.readFileSync(path.join(legacyOut, 'revisions.ndjson'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as unknown);

    const args = ['rollup', '--source', bucket.dir, '--out', legacyOut, '--now', new Date(later).toISOString(), '--grace', '5m', '--stale-after', '6h'];
    const r = await waitExit(spawnCli(args));
    expect(r.code, r.stderr).toBe(0);
    expect(fs.existsSync(path.join(legacyOut, 'state.duckdb'))).toBe(true);
    expect(fs.existsSync(path.join(legacyOut, 'state.json'))).toBe(false);
    expect(fs.existsSync(path.join(legacyOut, 'state.json.migrated'))).toBe(true);
    for (const flat of ['hourly.ndjson', 'intervals.ndjson', 'revisions.ndjson']) expect(fs.existsSync(path.join(legacyOut, flat)), flat).toBe(false);

    expect(partitionRows(path.join(legacyOut, 'hourly'))).toEqual(reference.hourly);
    expect(partitionRows(path.join(legacyOut, 'intervals'))).toEqual(reference.intervals);
    // The revisions already emitted, as run 0; re-reading the same objects revises nothing.
    expect(partitionRows(path.join(legacyOut, 'revisions'))).toEqual(legacyRevisions);
    expect(fs.readdirSync(path.join(legacyOut, 'revisions')).sort()).toEqual(['run=000000']);

    // Incremental from here: a run with nothing new changes no byte.
    const before = new Map(fs.readdirSync(legacyOut, { recursive: true }).map((f) => [String(f), fs.statSync(path.join(legacyOut, String(f))).mtimeMs]));
    const again = await waitExit(spawnCli(args));
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain('read 0 new objects');
    for (const [f, mtime] of before) if (!f.startsWith('state.duckdb') && fs.statSync(path.join(legacyOut, f)).isFile()) expect(fs.statSync(path.join(legacyOut, f)).mtimeMs, f).toBe(mtime);
  });

  it('a state.json it cannot carry over fails the run (exit 2) and is still carried over once it is fixed', async () => {
    const t = tempDir('consumer-migration-retry');
    cleanups.push(t.cleanup);
    const bucket = new TestBucket(path.join(t.dir, 'bucket'));
    const out = path.join(t.dir, 'out');
    const fleet = await handBuiltFleet(bucket);
    const settings = { graceMs: FLEET_GRACE_MS, staleAfterMs: FLEET_STALE_AFTER_MS };
    await referenceRollup({ source: bucket.dir, out, now: fleet.now, ...settings });
    const later = await fleet.comeBack();
    const reference = await referenceRollup({ source: bucket.dir, out, now: later, ...settings });
    const good = fs.readFileSync(path.join(out, 'state.json'));
    const args = ['rollup', '--source', bucket.dir, '--out', out, '--now', new Date(later).toISOString(), '--grace', '5m', '--stale-after', '6h'];
    fs.writeFileSync(path.join(out, 'state.json'), '{"v":9}\n');
    const bad = await waitExit(spawnCli(args));
    expect(bad.code, bad.stderr).toBe(2);
    expect(bad.stderr).toContain('version 9');
    // The failed run left no run behind: the fixed state.json is carried over, versions and all.
    fs.writeFileSync(path.join(out, 'state.json'), good);
    const r = await waitExit(spawnCli(args));
    expect(r.code, r.stderr).toBe(0);
    expect(partitionRows(path.join(out, 'hourly'))).toEqual(reference.hourly);
    expect(fs.existsSync(path.join(out, 'state.json.migrated'))).toBe(true);
  });

  it('refuses a --state that is the earlier JSON state itself (exit 2, nothing written)', async () => {
    const t = tempDir('consumer-migration-refuse');
    cleanups.push(t.cleanup);
    const bucket = new TestBucket(path.join(t.dir, 'bucket'));
    const out = path.join(t.dir, 'out');
    const fleet = await handBuiltFleet(bucket);
    await referenceRollup({ source: bucket.dir, out, now: fleet.now, graceMs: 5 * MIN, staleAfterMs: 6 * HOUR });
    const legacy = fs.readFileSync(path.join(out, 'state.json'));
    const r = await waitExit(spawnCli(['rollup', '--source', bucket.dir, '--out', path.join(t.dir, 'new-out'), '--state', path.join(out, 'state.json')]));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('state file of the earlier JSON consumer');
    expect(fs.readFileSync(path.join(out, 'state.json'))).toEqual(legacy);
    expect(fs.existsSync(path.join(t.dir, 'new-out', 'report.json'))).toBe(false);
  });
});
