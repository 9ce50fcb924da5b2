/**
 * The engine's own contract (runRollup of metering-ledger/sink and `metering rollup`), beyond
 * agreeing with the reference model: its state is one DuckDB file that belongs to one source, a run
 * is one transaction, two runs on one state refuse; its outputs are partitions by day that hold the
 * reference's rows, a re-run with nothing new touches no output file, new data for one day rewrites
 * only that day's partitions, parquet holds the same rows as ndjson, and a run killed mid-write
 * (kill -9) followed by a re-run leaves exactly the outputs of an uninterrupted run. Without
 * @duckdb/node-api installed it says how to install it.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { acquireStateLock, RollupLockedError, runRollup, StateFileError } from 'metering-ledger/sink';
import { runRollup as runReference } from './reference/run-rollup.js';
import { HOUR, MIN, T0, TestBucket, TestWriter } from './support/consumer-bucket.js';
import { filesUnder, partitionFiles, readOutputs, readParquetOutputs } from './support/read-outputs.js';
import { spawnCli, waitExit } from './support/spawn.js';
import { tempDir } from './support/tmp.js';
import { expireStateLock } from './support/stale-lock.js';
import { pollUntil } from './support/until.js';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const HIDE_DUCKDB = new URL('./support/hide-duckdb.mjs', import.meta.url).href;
const PAUSE_BEFORE_PARTITION = new URL('./support/pause-before-partition.mjs', import.meta.url).href;
const DAY = 24 * HOUR;

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

/**
 * Three days of one node: one VM a day (all stopped), an invalid line, progress through day 3
 * 06:00. `more()` lands objects that touch day 3 only (a VM 08:00-09:00, progress through 12:00);
 * `late()` lands a stop for day 1's VM that arrives after its hours are final (revisions) beside
 * another day-3 VM.
 */
async function threeDays(): Promise<{ bucket: TestBucket; root: string; now1: number; now2: number; more: () => Promise<void>; late: () => Promise<void> }> {
  const t = tempDir('sql-engine-days');
  cleanups.push(t.cleanup);
  const bucket = new TestBucket(path.join(t.dir, 'bucket'));
  const w = new TestWriter('n1', 'w1');
  const day = (d: number, h: number, m = 0): number => T0 + d * DAY + h * HOUR + m * MIN;
  await bucket.put([w.start('vm1', day(0, 1, 20), { cpu: 4 }), w.stop('vm1', day(0, 5)), w.start('vm2', day(1, 3)), w.stop('vm2', day(1, 4, 30))]);
  await bucket.put([w.start('vm3', day(2, 1)), w.stop('vm3', day(2, 2, 15))]);
  await bucket.putBytes('n1', bucket.segment(), Buffer.from('not json\n'));
  const now1 = day(2, 6);
  const now2 = day(2, 12);
  await bucket.progress('n1', now1, now1);
  return {
    bucket,
    root: t.dir,
    now1,
    now2,
    more: async () => {
      await bucket.put([w.start('vm4', day(2, 8)), w.stop('vm4', day(2, 9))]);
      await bucket.progress('n1', now2, now2);
    },
    late: async () => {
      await bucket.put([w.stop('vm1', day(0, 3, 40)), w.start('vm5', day(2, 7)), w.stop('vm5', day(2, 7, 45))]);
      await bucket.progress('n1', now2, now2);
    },
  };
}

/** Every output file under --out (the state database and its spill directory are not outputs): bytes, inode, mtime. */
function outputSnapshot(out: string): Map<string, { bytes: Buffer; ino: bigint; mtimeNs: bigint }> {
  const snap = new Map<string, { bytes: Buffer; ino: bigint; mtimeNs: bigint }>();
  for (const rel of filesUnder(out)) {
    if (rel.startsWith('state.duckdb')) continue;
    const file = path.join(out, rel);
    const st = fs.statSync(file, { bigint: true });
    snap.set(rel, { bytes: fs.readFileSync(file), ino: st.ino, mtimeNs: st.mtimeNs });
  }
  return snap;
}

const concatenated = (files: string[]): string => files.map((f) => fs.readFileSync(f, 'utf8')).join('');

const rollupCli = (bucket: TestBucket, out: string, now: number): string[] => ['rollup', '--source', bucket.dir, '--out', out, '--now', new Date(now).toISOString(), '--grace', '0s'];

async function cli(args: string[]): Promise<void> {
  const r = await waitExit(spawnCli(args, { env: { ...process.env, METERING_LOG_LEVEL: 'warn' } }));
  expect(r.code, r.stderr).toBe(0);
}

describe('the engine (runRollup, metering rollup)', () => {
  it("keeps its state in <out>/state.duckdb (private) and writes day partitions whose concatenation is the reference model's flat files, byte for byte", async () => {
    const { bucket, root, now1 } = await threeDays();
    const out = path.join(root, 'out');
    const refOut = path.join(root, 'ref-out');
    const opts = { source: bucket.dir, now: now1, graceMs: 0 };
    const first = await runRollup({ ...opts, out });
    await runReference({ ...opts, out: refOut });
    expect(first.run.objects_read).toBe(3);
    expect(first.report.invalid_lines.count).toBe(1);
    expect(fs.statSync(path.join(out, 'state.duckdb')).mode & 0o777).toBe(0o600);
    expect(filesUnder(out).filter((f) => !f.startsWith('state.duckdb'))).toEqual([
      'hourly/dt=2026-11-01/hourly.ndjson',
      'hourly/dt=2026-11-02/hourly.ndjson',
      'hourly/dt=2026-11-03/hourly.ndjson',
      'intervals/dt=2026-11-01/intervals.ndjson',
      'intervals/dt=2026-11-02/intervals.ndjson',
      'intervals/dt=2026-11-03/intervals.ndjson',
      'report.json',
    ]);
    for (const output of ['hourly', 'intervals', 'revisions'] as const) {
      expect(concatenated(partitionFiles(out, output)), output).toBe(fs.readFileSync(path.join(refOut, `${output}.ndjson`), 'utf8'));
    }
    expect(fs.readFileSync(path.join(out, 'report.json'), 'utf8')).toBe(fs.readFileSync(path.join(refOut, 'report.json'), 'utf8'));
  });

  it('a re-run with nothing new (same --now) leaves every output file as it was: bytes, inode and mtime', async () => {
    const { bucket, root, now1, now2, late } = await threeDays();
    const out = path.join(root, 'out');
    await cli(rollupCli(bucket, out, now1));
    await late();
    await cli(rollupCli(bucket, out, now2)); // revisions/run=000002 exists too
    const before = outputSnapshot(out);
    expect([...before.keys()].some((f) => f.startsWith('revisions/run='))).toBe(true);
    await cli(rollupCli(bucket, out, now2));
    const after = outputSnapshot(out);
    expect([...after.keys()]).toEqual([...before.keys()]);
    for (const [rel, b] of before) {
      const a = after.get(rel)!;
      expect(a.bytes.equals(b.bytes), `${rel}: bytes`).toBe(true);
      expect(a.ino, `${rel}: inode (not replaced)`).toBe(b.ino);
      expect(a.mtimeNs, `${rel}: mtime`).toBe(b.mtimeNs);
    }
  });

  it("new objects for one day rewrite only that day's partitions; the other days' files are untouched, and the result equals a one-shot run", async () => {
    const { bucket, root, now1, now2, more } = await threeDays();
    const out = path.join(root, 'out');
    await cli(rollupCli(bucket, out, now1));
    const before = outputSnapshot(out);
    await more();
    await cli(rollupCli(bucket, out, now2));
    const after = outputSnapshot(out);
    expect([...after.keys()]).toEqual([...before.keys()]);
    for (const rel of ['hourly/dt=2026-11-01/hourly.ndjson', 'hourly/dt=2026-11-02/hourly.ndjson', 'intervals/dt=2026-11-01/intervals.ndjson', 'intervals/dt=2026-11-02/intervals.ndjson']) {
      const [a, b] = [after.get(rel)!, before.get(rel)!];
      expect(a.bytes.equals(b.bytes), `${rel}: bytes`).toBe(true);
      expect(a.ino, `${rel}: inode`).toBe(b.ino);
      expect(a.mtimeNs, `${rel}: mtime`).toBe(b.mtimeNs);
    }
    for (const rel of ['hourly/dt=2026-11-03/hourly.ndjson', 'intervals/dt=2026-11-03/intervals.ndjson', 'report.json']) {
      expect(after.get(rel)!.bytes.equals(before.get(rel)!.bytes), `${rel} has the new rows`).toBe(false);
    }
    expect(readOutputs(out).intervals.map((i) => i.resource_id)).toEqual(['vm1', 'vm2', 'vm3', 'vm4']);
    // Incremental equals everything at once.
    const oneShot = path.join(root, 'one-shot');
    await cli(rollupCli(bucket, oneShot, now2));
    const whole = outputSnapshot(oneShot);
    expect([...whole.keys()]).toEqual([...after.keys()]);
    for (const [rel, w] of whole) if (rel !== 'report.json') expect(after.get(rel)!.bytes.equals(w.bytes), rel).toBe(true);
  });

  it("format 'parquet' writes the same rows as ndjson (read back with read_parquet), and switching an --out's format leaves only the new format", async () => {
    const { bucket, root, now1, now2, late } = await threeDays();
    const [nd, pq, switched] = ['nd', 'pq', 'switched'].map((n) => path.join(root, n)) as [string, string, string];
    for (const [now, step] of [[now1, async () => {}], [now2, late]] as const) {
      await step();
      await runRollup({ source: bucket.dir, out: nd, now, graceMs: 0 });
      await runRollup({ source: bucket.dir, out: pq, now, graceMs: 0, format: 'parquet' });
      await runRollup({ source: bucket.dir, out: switched, now, graceMs: 0, format: now === now1 ? 'ndjson' : 'parquet' });
    }
    const rows = readOutputs(nd);
    expect(rows.revisions.length).toBeGreaterThan(0);
    expect(filesUnder(pq).filter((f) => !f.startsWith('state.duckdb') && f !== 'report.json').every((f) => f.endsWith('.parquet'))).toBe(true);
    expect(await readParquetOutputs(pq)).toEqual(rows);
    expect(filesUnder(switched).filter((f) => f.endsWith('.ndjson'))).toEqual([]);
    expect(await readParquetOutputs(switched)).toEqual(rows);
  });

  it('a run killed (kill -9) while it replaces partitions, then run again, leaves exactly the outputs of an uninterrupted run', async () => {
    const { bucket, root, now1, now2, late } = await threeDays();
    const [killed, control] = ['killed', 'control'].map((n) => path.join(root, n)) as [string, string];
    await cli(rollupCli(bucket, killed, now1));
    await cli(rollupCli(bucket, control, now1));
    const reportBefore = fs.readFileSync(path.join(killed, 'report.json'));
    await late(); // rewrites day 1 and day 3 partitions and adds revisions/run=000002
    await cli(rollupCli(bucket, control, now2));

    // The second run of `killed` stops just before it renames its second partition into place.
    const marker = path.join(root, 'paused');
    const child = spawn(process.execPath, ['--import', PAUSE_BEFORE_PARTITION, 'bin/metering.js', ...rollupCli(bucket, killed, now2)], {
      cwd: REPO,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, METERING_LOG_LEVEL: 'warn', METERING_TEST_PAUSE_MARKER: marker, METERING_TEST_PAUSE_AT: '2' },
    });
    const exited = waitExit(child);
    let early: string | undefined;
    void exited.then((r) => (early = `exited (${r.code}) before pausing: ${r.stderr}`));
    await pollUntil('the run to pause before its second partition', () => early !== undefined || fs.existsSync(marker), 60_000, 10);
    expect(early).toBeUndefined();
    const tmp = fs.readFileSync(marker, 'utf8');
    expect(fs.existsSync(tmp), `partition temp file ${tmp}`).toBe(true);
    child.kill('SIGKILL');
    expect((await exited).signal).toBe('SIGKILL');
    // Cut mid-run: one partition replaced, report and state not yet.
    expect(fs.readFileSync(path.join(killed, 'report.json')).equals(reportBefore)).toBe(true);

    expireStateLock(path.join(killed, 'state.duckdb'));
    await cli(rollupCli(bucket, killed, now2));

    // Outputs only (temp files left by the kill are consumer-temp-cleanup's concern).
    const visible = (out: string): Map<string, Buffer> => new Map([...outputSnapshot(out)].filter(([rel]) => !path.basename(rel).startsWith('.')).map(([rel, s]) => [rel, s.bytes]));
    const got = visible(killed);
    const want = visible(control);
    expect([...got.keys()]).toEqual([...want.keys()]);
    expect([...want.keys()].some((f) => f.startsWith('revisions/run=000002/'))).toBe(true);
    for (const [rel, bytes] of want) expect(got.get(rel)!.toString(), rel).toBe(bytes.toString());
  });

  it('fails closed: a state of another source, or a file that is not a DuckDB database, is refused; a held lock refuses (exit 3 in the CLI)', async () => {
    const { bucket, root } = await fleet();
    const state = path.join(root, 'state.duckdb');
    await runRollup({ source: bucket.dir, state, now: T0 + 3 * HOUR });
    fs.mkdirSync(path.join(root, 'other-bucket'));
    await expect(runRollup({ source: path.join(root, 'other-bucket'), state, now: T0 + 3 * HOUR })).rejects.toThrow(/belongs to source/);
    const junk = path.join(root, 'junk.duckdb');
    fs.writeFileSync(junk, 'this is not a database, but a state someone overwrote');
    await expect(runRollup({ source: bucket.dir, state: junk, now: T0 + 3 * HOUR })).rejects.toBeInstanceOf(StateFileError);
    const lock = await acquireStateLock(state);
    try {
      await expect(runRollup({ source: bucket.dir, state, now: T0 + 3 * HOUR })).rejects.toBeInstanceOf(RollupLockedError);
    } finally {
      await lock.release();
    }
    await expect(runRollup({ source: path.join(root, 'typo'), now: T0 })).rejects.toThrow(/does not exist/);
  });

  it('a run that fails leaves the database as the previous run left it (one transaction per run)', async () => {
    const { bucket, root } = await fleet();
    const state = path.join(root, 'state.duckdb');
    const first = await runRollup({ source: bucket.dir, state, now: T0 + 3 * HOUR, graceMs: 0 });
    const w = new TestWriter('n1', 'w2');
    await bucket.put([w.stop('vm2', T0 + 2 * HOUR)]);
    // The run dies after it appended the new object's lines (here: its progress callback throws).
    const dying = (p: { phase: string }): void => {
      if (p.phase === 'compute') throw new Error('injected: the run dies here');
    };
    await expect(runRollup({ source: bucket.dir, state, now: T0 + 3 * HOUR, graceMs: 0, onProgress: dying })).rejects.toThrow(/dies here/);
    const next = await runRollup({ source: bucket.dir, state, now: T0 + 3 * HOUR, graceMs: 0 });
    // The new object was not recorded as read by the failed run: this run read it.
    expect(next.run.objects_read).toBe(1);
    expect(next.report.entries_read).toBe(first.report.entries_read + 1);
  });

  it('without @duckdb/node-api installed, says what to install (a real process in which the package does not resolve)', async () => {
    const { bucket } = await fleet();
    const script = `import { runRollup } from 'metering-ledger/sink';
try { await runRollup({ source: ${JSON.stringify(bucket.dir)} }); console.log('no error'); }
catch (err) { console.log(JSON.stringify({ name: err.name, message: err.message, hint: err.hint })); }`;
    const r = spawnSync(process.execPath, ['--import', HIDE_DUCKDB, '--import', 'tsx', '--input-type=module', '-e', script], { cwd: REPO, encoding: 'utf8', timeout: 60_000 });
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { name: string; message: string; hint: string };
    expect(out.name).toBe('OptionalPeerMissingError');
    expect(out.message).toMatch(/^metering rollup needs the optional package @duckdb\/node-api/);
    expect(out.hint).toMatch(/^npm install @duckdb\/node-api@/);
  });
});
