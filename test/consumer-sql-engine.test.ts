/**
 * The DuckDB engine's own contract, beyond agreeing with the TypeScript consumer: its state is one
 * DuckDB file that belongs to one source, a run is one transaction, two runs on one state refuse,
 * outputs match runRollup's files, a re-run with nothing new changes nothing, and without
 * @duckdb/node-api installed it says how to install it.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { acquireStateLock, RollupLockedError, runRollup, runSqlRollup, StateFileError } from 'metering-ledger/sink';
import { HOUR, MIN, T0, TestBucket, TestWriter } from './support/consumer-bucket.js';
import { tempDir } from './support/tmp.js';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const HIDE_DUCKDB = new URL('./support/hide-duckdb.mjs', import.meta.url).href;

const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});

async function fleet(): Promise<{ bucket: TestBucket; root: string }> {
  const t = tempDir('sql-engine');
  cleanups.push(t.cleanup);
  const bucket = new TestBucket(path.join(t.dir, 'bucket'));
  const w = new TestWriter('n1', 'w1');
  await bucket.put([w.start('vm1', T0 + 10 * MIN, { cpu: 4 }), w.stop('vm1', T0 + 2 * HOUR), w.start('vm2', T0 + HOUR)]);
  await bucket.putBytes('n1', bucket.segment(), Buffer.from('not json\n'));
  await bucket.progress('n1', T0 + 3 * HOUR, T0 + 3 * HOUR);
  return { bucket, root: t.dir };
}

describe('runSqlRollup (DuckDB engine)', () => {
  it('writes the same output files as runRollup, keeps its state in <out>/state.duckdb, and a re-run with nothing new changes no byte', async () => {
    const { bucket, root } = await fleet();
    const out = path.join(root, 'sql-out');
    const tsOut = path.join(root, 'ts-out');
    const opts = { source: bucket.dir, now: T0 + 3 * HOUR, graceMs: 0 };
    const first = await runSqlRollup({ ...opts, out });
    await runRollup({ ...opts, out: tsOut });
    expect(fs.readdirSync(out).sort()).toEqual(['hourly.ndjson', 'intervals.ndjson', 'report.json', 'revisions.ndjson', 'state.duckdb']);
    for (const f of ['hourly.ndjson', 'intervals.ndjson', 'revisions.ndjson', 'report.json']) {
      expect(fs.readFileSync(path.join(out, f), 'utf8'), f).toBe(fs.readFileSync(path.join(tsOut, f), 'utf8'));
    }
    expect(first.report.invalid_lines.count).toBe(1);
    expect(fs.statSync(path.join(out, 'state.duckdb')).mode & 0o077).toBe(0); // private, like the outputs
    expect(first.run.objects_read).toBe(2);
    const before = Object.fromEntries(['hourly.ndjson', 'intervals.ndjson', 'revisions.ndjson', 'report.json'].map((f) => [f, fs.readFileSync(path.join(out, f))]));
    const again = await runSqlRollup({ ...opts, out });
    expect(again.run.objects_read).toBe(0);
    for (const [f, bytes] of Object.entries(before)) expect(fs.readFileSync(path.join(out, f)).equals(bytes), f).toBe(true);
  });

  it('fails closed: a state of another source, or a file that is not a DuckDB database, is refused; a held lock refuses (exit 3 in the CLI)', async () => {
    const { bucket, root } = await fleet();
    const state = path.join(root, 'state.duckdb');
    await runSqlRollup({ source: bucket.dir, state, now: T0 + 3 * HOUR });
    fs.mkdirSync(path.join(root, 'other-bucket'));
    await expect(runSqlRollup({ source: path.join(root, 'other-bucket'), state, now: T0 + 3 * HOUR })).rejects.toThrow(/belongs to source/);
    const junk = path.join(root, 'junk.duckdb');
    fs.writeFileSync(junk, 'this is not a database, but a state someone overwrote');
    await expect(runSqlRollup({ source: bucket.dir, state: junk, now: T0 + 3 * HOUR })).rejects.toBeInstanceOf(StateFileError);
    const lock = await acquireStateLock(state);
    try {
      await expect(runSqlRollup({ source: bucket.dir, state, now: T0 + 3 * HOUR })).rejects.toBeInstanceOf(RollupLockedError);
    } finally {
      await lock.release();
    }
    await expect(runSqlRollup({ source: path.join(root, 'typo'), now: T0 })).rejects.toThrow(/does not exist/);
  });

  it('a run that fails leaves the database as the previous run left it (one transaction per run)', async () => {
    const { bucket, root } = await fleet();
    const state = path.join(root, 'state.duckdb');
    const first = await runSqlRollup({ source: bucket.dir, state, now: T0 + 3 * HOUR, graceMs: 0 });
    const w = new TestWriter('n1', 'w2');
    await bucket.put([w.stop('vm2', T0 + 2 * HOUR)]);
    // The run dies after it appended the new object's lines (here: its progress callback throws).
    const dying = (p: { phase: string }): void => {
      if (p.phase === 'compute') throw new Error('injected: the run dies here');
    };
    await expect(runSqlRollup({ source: bucket.dir, state, now: T0 + 3 * HOUR, graceMs: 0, onProgress: dying })).rejects.toThrow(/dies here/);
    const next = await runSqlRollup({ source: bucket.dir, state, now: T0 + 3 * HOUR, graceMs: 0 });
    // The new object was not recorded as read by the failed run: this run read it.
    expect(next.run.objects_read).toBe(1);
    expect(next.report.entries_read).toBe(first.report.entries_read + 1);
  });

  it('without @duckdb/node-api installed, says what to install (a real process in which the package does not resolve)', async () => {
    const { bucket } = await fleet();
    const script = `import { runSqlRollup } from 'metering-ledger/sink';
try { await runSqlRollup({ source: ${JSON.stringify(bucket.dir)} }); console.log('no error'); }
catch (err) { console.log(JSON.stringify({ name: err.name, message: err.message, hint: err.hint })); }`;
    const r = spawnSync(process.execPath, ['--import', HIDE_DUCKDB, '--import', 'tsx', '--input-type=module', '-e', script], { cwd: REPO, encoding: 'utf8', timeout: 60_000 });
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { name: string; message: string; hint: string };
    expect(out.name).toBe('OptionalPeerMissingError');
    expect(out.message).toMatch(/^metering rollup needs the optional package @duckdb\/node-api/);
    expect(out.hint).toMatch(/^npm install @duckdb\/node-api@/);
  });
});
