/**
 * A backlog bigger than --chunk-bytes is read by several runs in one `metering rollup`, each
 * committed (sink/consumer/backlog-chunks.ts): a first run over months of a fleet stays bounded by
 * the chunk. Every chunk but the last holds the watermark, so chunking may change when an hour turns
 * final, never what is billed: the outputs equal one run's, byte for byte when nothing was final
 * before; after a crash between chunks the next run carries on to the same bytes.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import fc from 'fast-check';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { LedgerEntry } from 'metering-ledger';
import { runRollup } from 'metering-ledger/sink';
import { HOUR, MIN, T0, TestBucket, TestWriter } from './support/consumer-bucket.js';
import { filesUnder, outputTexts, readOutputs } from './support/read-outputs.js';
import { cliError } from './support/cli-error.js';
import { spawnCli, waitExit } from './support/spawn.js';
import { tempDir } from './support/tmp.js';
import { FLEET_GRACE_MS, FLEET_STALE_AFTER_MS, handBuiltFleet } from './support/twin-fleet.js';
import { expireStateLock } from './support/stale-lock.js';
import { pollUntil } from './support/until.js';

const PAUSE_AFTER_LOG = new URL('./support/pause-after-log.mjs', import.meta.url).href;

/** The CLI's environment to stop it for good just after its nth backlog chunk committed. */
const pauseAfterChunk = (marker: string, nth: number): NodeJS.ProcessEnv => ({
  ...process.env,
  METERING_LOG_LEVEL: 'info',
  NODE_OPTIONS: `--import ${PAUSE_AFTER_LOG}`,
  METERING_TEST_PAUSE_MARKER: marker,
  METERING_TEST_PAUSE_LOG: 'backlog chunk committed',
  METERING_TEST_PAUSE_AT: String(nth),
});



const cliArgs = (source: string, out: string, now: number, extra: string[] = []): string[] => [
  'rollup', '--source', source, '--out', out, '--now', new Date(now).toISOString(), '--grace', `${FLEET_GRACE_MS / MIN}m`, '--stale-after', `${FLEET_STALE_AFTER_MS / HOUR}h`, ...extra,
];

async function rollupCli(source: string, out: string, now: number, extra: string[] = []): Promise<string> {
  const r = await waitExit(spawnCli(cliArgs(source, out, now, extra), { env: { ...process.env, METERING_LOG_LEVEL: 'info' } }));
  expect(r.stderr.includes('"level":50') ? r.stderr : '', 'no error logged').toBe('');
  expect(r.code, r.stderr).toBe(0);
  return r.stderr;
}

const chunkLogs = (stderr: string): Record<string, unknown>[] =>
  stderr
    .split('\n')
    .filter((l) => l.includes('backlog chunk committed'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);

async function committedRuns(state: string): Promise<number> {
  const { DuckDBInstance } = await import('@duckdb/node-api');
  const instance = await DuckDBInstance.create(state);
  const conn = await instance.connect();
  try {
    return Number((await conn.runAndReadAll('SELECT COUNT(*) FROM metering_runs')).getRows()[0]![0]);
  } finally {
    conn.closeSync();
    instance.closeSync();
  }
}


/** The hand-built fleet in a bucket, read by one run into `one`; `chunked` is where the test reads it in chunks. */
async function fleetReadInOneRun(name: string) {
  const t = tempDir(name);
  onTestFinished(t.cleanup);
  const bucket = new TestBucket(path.join(t.dir, 'bucket'));
  const fleet = await handBuiltFleet(bucket);
  const one = path.join(t.dir, 'one');
  await rollupCli(bucket.dir, one, fleet.now, ['--chunk-bytes', '0']);
  return { t, bucket, fleet, one, chunked: path.join(t.dir, 'chunked'), ledgerObjects: filesUnder(path.join(bucket.dir, 'ledger')).length };
}

describe('a backlog read in chunks', () => {
  it('publishes, byte for byte, what one run publishes; after final hours, the same billed values', async () => {
    const { bucket, fleet, one, chunked, ledgerObjects } = await fleetReadInOneRun('chunks-cli');
    // One object per run: the fleet's first objects hold hours its later ones change.
    const logs = chunkLogs(await rollupCli(bucket.dir, chunked, fleet.now, ['--chunk-bytes', '1']));
    expect(logs.map((l) => l.chunk)).toEqual(Array.from({ length: ledgerObjects }, (_, i) => i + 1));
    expect(logs.map((l) => l.holds_watermark)).toEqual(Array.from({ length: ledgerObjects }, (_, i) => i < ledgerObjects - 1));
    expect(readOutputs(one).report.hourly_rows.final).toBeGreaterThan(0);
    expect(outputTexts(chunked)).toEqual(outputTexts(one));

    // Now hours are final. A backlog of late entries, in three objects, and the stale node back:
    // the chunks leave final hours to the last one, which revises each once, as one run does.
    const now2 = await fleet.comeBack();
    const late = new TestWriter('node-a', 'wa3');
    await bucket.put([late.start('vm7', T0 + 20 * MIN), late.stop('vm7', T0 + 2 * HOUR + 5 * MIN)]);
    await bucket.put([late.start('vm7', T0 + 2 * HOUR + 30 * MIN), late.stop('vm7', T0 + 3 * HOUR)]);
    await bucket.put([late.start('vm8', T0 + 10 * MIN), late.running('vm8', T0 + 8 * HOUR)]);
    await rollupCli(bucket.dir, one, now2, ['--chunk-bytes', '0']);
    expect(chunkLogs(await rollupCli(bucket.dir, chunked, now2, ['--chunk-bytes', '1'])).length).toBe(4);
    const a = readOutputs(one);
    const b = readOutputs(chunked);
    expect(a.report.late_entries.count).toBeGreaterThan(0);
    expect(a.report.revisions).toBeGreaterThan(0);
    expect(b.intervals).toEqual(a.intervals);
    expect(b.hourly).toEqual(a.hourly);
    expect(b.revisions).toEqual(a.revisions);
    expect(b.report).toEqual(a.report);
    // The same bytes, but the revisions' partition: named by the run that emitted them (the last chunk).
    const revisionsDir = (out: string): string[] => fs.readdirSync(path.join(out, 'revisions'));
    expect(revisionsDir(one)).toEqual(['run=000002']);
    expect(revisionsDir(chunked)).toEqual([`run=${String(ledgerObjects + 4).padStart(6, '0')}`]);
    const rest = (out: string): Record<string, string> => Object.fromEntries(Object.entries(outputTexts(out)).filter(([rel]) => !rel.startsWith('revisions')));
    expect(rest(chunked)).toEqual(rest(one));
  }, 300_000);

  it('killed -9 between chunks, the next run carries on and publishes the same bytes; the chunks that hold the watermark write no output', async () => {
    const { t, bucket, fleet, one, chunked, ledgerObjects } = await fleetReadInOneRun('chunks-kill');

    // Stopped for good just after the 2nd chunk committed, then killed.
    const marker = path.join(t.dir, 'paused');
    const child = spawnCli(cliArgs(bucket.dir, chunked, fleet.now, ['--chunk-bytes', '1']), { env: pauseAfterChunk(marker, 2) });
    // A paused child never exits by itself: killed also when an expectation fails first.
    onTestFinished(() => void child.kill('SIGKILL'));
    const exited = waitExit(child);
    await pollUntil('the run to pause after a chunk', () => fs.existsSync(marker), 60_000, 20);
    // Two runs committed, neither wrote a partition or the report (the last run writes them all);
    // the marker says the outputs lag the state.
    expect(filesUnder(chunked).filter((f) => /^(hourly|intervals|revisions)[\\/]|^report\.json$/.test(f))).toEqual([]);
    expect(fs.existsSync(path.join(chunked, '.outputs-pending'))).toBe(true);
    child.kill('SIGKILL');
    expect((await exited).signal).toBe('SIGKILL');
    // What the killed run committed and had not yet checkpointed is in DuckDB's write-ahead log,
    // left behind: as private as the state it belongs to.
    const wal = path.join(chunked, 'state.duckdb.wal');
    expect(fs.existsSync(wal), 'a write-ahead log left by the killed run').toBe(true);
    expect(fs.statSync(wal).mode & 0o777).toBe(0o600);
    expect(await committedRuns(path.join(chunked, 'state.duckdb'))).toBe(2);
    expireStateLock(path.join(chunked, 'state.duckdb'));

    // The next run reads only what the committed chunks did not, and ends where one run ends.
    const logs = chunkLogs(await rollupCli(bucket.dir, chunked, fleet.now, ['--chunk-bytes', '1']));
    expect(logs.length).toBe(ledgerObjects - 2);
    expect(outputTexts(chunked)).toEqual(outputTexts(one));
    expect(fs.existsSync(path.join(chunked, '.outputs-pending'))).toBe(false);
  }, 300_000);

  it('killed -9 between chunks over outputs of an earlier call, the next call rewrites what the committed chunks changed', async () => {
    const { t, bucket, fleet, one, chunked } = await fleetReadInOneRun('chunks-kill-2');
    await rollupCli(bucket.dir, chunked, fleet.now, ['--chunk-bytes', '1']);
    // Late entries over four objects and the stale node back: they change hours the earlier call
    // published. The first object (the first chunk, committed before the kill) starts an interval
    // on the day before, a partition no later chunk changes.
    const now2 = await fleet.comeBack();
    const late = new TestWriter('node-a', 'wa3');
    await bucket.put([late.start('vm9', T0 - 20 * HOUR), late.stop('vm9', T0 - 19 * HOUR)]);
    await bucket.put([late.start('vm7', T0 + 20 * MIN), late.stop('vm7', T0 + 2 * HOUR + 5 * MIN)]);
    await bucket.put([late.start('vm7', T0 + 2 * HOUR + 30 * MIN), late.stop('vm7', T0 + 3 * HOUR)]);
    await bucket.put([late.start('vm8', T0 + 10 * MIN), late.running('vm8', T0 + 8 * HOUR)]);
    await rollupCli(bucket.dir, one, now2, ['--chunk-bytes', '0']);
    const before = outputTexts(chunked);
    expect(outputTexts(one)).not.toEqual(before);
    const dayBefore = `intervals/dt=${new Date(T0 - 24 * HOUR).toISOString().slice(0, 10)}/intervals.ndjson`;
    expect(Object.keys(outputTexts(one))).toContain(dayBefore);

    const marker = path.join(t.dir, 'paused');
    const child = spawnCli(cliArgs(bucket.dir, chunked, now2, ['--chunk-bytes', '1']), { env: pauseAfterChunk(marker, 2) });
    // A paused child never exits by itself: killed also when an expectation fails first.
    onTestFinished(() => void child.kill('SIGKILL'));
    const exited = waitExit(child);
    await pollUntil('the run to pause after a chunk', () => fs.existsSync(marker), 60_000, 20);
    child.kill('SIGKILL');
    expect((await exited).signal).toBe('SIGKILL');
    // The committed chunks changed no file: the earlier call's outputs stand, behind the state, and
    // the marker says so.
    const { '.outputs-pending': pending, ...after } = outputTexts(chunked);
    expect(after).toEqual(before);
    expect(pending).toBeDefined();
    expireStateLock(path.join(chunked, 'state.duckdb'));

    await rollupCli(bucket.dir, chunked, now2, ['--chunk-bytes', '1']);
    const a = readOutputs(one);
    const b = readOutputs(chunked);
    expect(b.intervals).toEqual(a.intervals);
    expect(b.hourly).toEqual(a.hourly);
    expect(b.revisions).toEqual(a.revisions);
    expect(b.report).toEqual(a.report);
  }, 300_000);
});

describe('--chunk-bytes', () => {
  it('that is not a size exits 2 with the flag named, and writes nothing', async () => {
    const t = tempDir('chunks-flag');
    onTestFinished(t.cleanup);
    const bucket = new TestBucket(path.join(t.dir, 'bucket'));
    await handBuiltFleet(bucket);
    const out = path.join(t.dir, 'out');
    const r = await waitExit(spawnCli(cliArgs(bucket.dir, out, T0 + 12 * HOUR, ['--chunk-bytes', 'a lot'])));
    expect(r.code).toBe(2);
    expect(cliError(r.stderr)).toMatchObject({ exit_code: 2, msg: expect.stringMatching(/--chunk-bytes: invalid size "a lot"/) as unknown });
    expect(fs.existsSync(out)).toBe(false);
  }, 60_000);
});

describe('chunked runs, random fleets', () => {
  const KINDS = ['vm.compute.start', 'vm.compute.stop', 'vm.compute.running', 'vm.storage.start', 'vm.storage.stop', 'snap.storage.start', 'snap.storage.stop'] as const;
  const NOW = T0 + 12 * HOUR;
  const eventArb = fc.record({
    kind: fc.constantFrom(...KINDS),
    res: fc.constantFrom('r1', 'r2', 'r3'),
    writer: fc.constantFrom('n1/a', 'n1/b', 'n2/c'),
    t: fc.integer({ min: 0, max: 10 * 60 }).map((m) => T0 + m * MIN),
    // Which phase uploads it, and in which of its objects.
    phase: fc.integer({ min: 0, max: 1 }),
    piece: fc.integer({ min: 0, max: 3 }),
  });

  it('give what one run gives, whatever the chunk size', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(eventArb, { minLength: 1, maxLength: 30 }), fc.integer({ min: 1, max: 2000 }), fc.integer({ min: 0, max: 12 * 60 }), async (events, chunkBytes, n1CompleteMin) => {
        const t = tempDir('chunks-prop');
        try {
          const writers = new Map<string, TestWriter>();
          const entries = events.map((e, i) => {
            const [node, w] = e.writer.split('/') as [string, string];
            if (!writers.has(e.writer)) writers.set(e.writer, new TestWriter(node, w));
            return { e, entry: { ...writers.get(e.writer)!.entry(e.kind, e.res, e.t), id: `id-${String(i).padStart(4, '0')}` } as LedgerEntry };
          });
          // One bucket, two consumers (each its own --out and state): one run, and chunks.
          const bucket = new TestBucket(path.join(t.dir, 'bucket'));
          const upload = async (phase: number): Promise<void> => {
            for (let piece = 0; piece < 4; piece++) {
              for (const node of ['n1', 'n2']) {
                const list = entries.filter((x) => x.e.phase === phase && x.e.piece === piece && x.entry.node === node).map((x) => x.entry);
                if (list.length > 0) await bucket.put(list, { segment: `ledger-20261101T000000000Z-seg0000${piece}.jsonl` });
              }
            }
            await bucket.progress('n1', T0 + (phase === 0 ? n1CompleteMin : 12 * 60) * MIN, NOW + phase * HOUR);
            await bucket.progress('n2', T0 + 11 * HOUR, NOW + phase * HOUR);
          };
          for (const phase of [0, 1]) {
            await upload(phase);
            const now = NOW + phase * HOUR;
            const a = await runRollup({ source: bucket.dir, out: path.join(t.dir, 'out-one'), now, chunkBytes: 0, collectRows: true });
            const b = await runRollup({ source: bucket.dir, out: path.join(t.dir, 'out-many'), now, chunkBytes, collectRows: true });
            expect(b.rows!.intervals).toEqual(a.rows!.intervals);
            expect(b.rows!.hourly).toEqual(a.rows!.hourly);
            expect(b.rows!.revisions).toEqual(a.rows!.revisions);
            expect(b.report).toEqual(a.report);
            // Before any hour is final nothing may differ at all.
            if (phase === 0) expect(outputTexts(path.join(t.dir, 'out-many'))).toEqual(outputTexts(path.join(t.dir, 'out-one')));
          }
        } finally {
          t.cleanup();
        }
      }),
      { numRuns: 20 },
    );
  }, 600_000);
});
