/**
 * Concurrency:
 * - two consumers on one state: while one rollup is mid-run (held inside its read phase), a second
 *   `metering rollup` refuses with exit 3 and a clear message, and writes nothing; both racing from
 *   the start: exactly one runs, or they run one after the other, never both at once.
 * - two shippers on one ledger directory: the second refuses with exit 3 naming the running one;
 *   both started at once: exactly one ships.
 * - rotation under heavy concurrent writes while shipping: many writers at full speed with tiny
 *   segments and a live shipper; every acknowledged entry ships exactly once and is read once.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { LocalDirDestination, runRollup, type Destination } from 'metering-ledger/sink';
import { listSegments } from 'metering-ledger';
import { spawnCli, waitExit } from '../support/spawn.js';
import { acknowledgedIds, checkPipeline, drainOnce, removeRoot, runConsumer, sampleRss, sleep, startShipperProcess, startWriter, tempRoot, until, waitForStderr, type FaultResult } from './support.js';

export type ConcurrencyCase = 'two-consumers' | 'two-shippers' | 'rotation-under-load';

export interface ConcurrencyParams {
  case: ConcurrencyCase;
  /** Repetitions of the race. */
  rounds: number;
  writers: number;
  entriesPerWriter: number;
}

export async function run(p: ConcurrencyParams): Promise<FaultResult> {
  const root = tempRoot(`conc-${p.case}`);
  try {
    if (p.case === 'two-consumers') return await twoConsumers(p, root);
    if (p.case === 'two-shippers') return await twoShippers(p, root);
    return await rotationUnderLoad(p, root);
  } finally {
    removeRoot(root);
  }
}

async function shippedBucket(p: ConcurrencyParams, root: string): Promise<{ bucket: string; acked: string[]; violations: string[] }> {
  const ledger = path.join(root, 'ledger');
  const bucket = path.join(root, 'bucket');
  const writers = Array.from({ length: p.writers }, () => startWriter(path.join(root, 'acks'), { ledger, count: p.entriesPerWriter }));
  const violations: string[] = [];
  for (const r of await Promise.all(writers.map((w) => w.done))) if (r.code !== 0) violations.push(`writer exited ${r.code}`);
  const s = await drainOnce(ledger, bucket);
  if (s.code !== 0) violations.push(`ship --once exited ${s.code}: ${s.stderr.slice(-300)}`);
  return { bucket, acked: acknowledgedIds(writers), violations };
}

async function twoConsumers(p: ConcurrencyParams, root: string): Promise<FaultResult> {
  const { bucket, acked, violations } = await shippedBucket(p, root);
  const now = new Date(Date.now() + 60_000);
  const nowFlag = ['--now', now.toISOString()];
  let refusals = 0;
  for (let round = 0; round < p.rounds; round++) {
    const out = path.join(root, `out-${round}`);
    // A rollup held inside its read phase: its destination answers reads only when released.
    const inner = new LocalDirDestination(bucket);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let reading!: () => void;
    const reached = new Promise<void>((r) => (reading = r));
    const held: Destination = {
      description: `held+${inner.description}`,
      putIfAbsent: (n, b, o) => inner.putIfAbsent(n, b, o),
      put: (n, b, o) => inner.put(n, b, o),
      get: async (n) => {
        reading();
        await gate;
        return inner.get(n);
      },
      head: (n) => inner.head(n),
      list: (prefix) => inner.list(prefix),
      delete: (n) => inner.delete(n),
    };
    const first = runRollup({ source: bucket, destination: { destination: held, prefix: '' }, out, now });
    await reached;
    const second = await runConsumer(bucket, out, nowFlag);
    if (second.exit.code === 3 && /another metering rollup is running/.test(second.exit.stderr)) refusals++;
    else violations.push(`second rollup during the first: exit ${second.exit.code}, ${second.exit.stderr.slice(0, 200)}`);
    if (fs.existsSync(path.join(out, 'report.json'))) violations.push('the refused rollup wrote a report');
    release();
    const r = await first;
    if (r.report.entries_read !== acked.length) violations.push(`held rollup read ${r.report.entries_read} of ${acked.length}`);
    // Afterwards the lock is free again: a run succeeds and finds nothing new.
    const after = await runConsumer(bucket, out, nowFlag);
    if (after.exit.code !== 0 || after.report?.entries_read !== acked.length || after.report.duplicates !== 0) violations.push(`rollup after the first finished: exit ${after.exit.code}, entries ${after.report?.entries_read}`);

    // Two processes racing from the start on a fresh state: never both inside at once.
    const raceOut = path.join(root, `race-${round}`);
    const [a, b] = await Promise.all([runConsumer(bucket, raceOut, nowFlag), runConsumer(bucket, raceOut, nowFlag)]);
    const codes = [a.exit.code, b.exit.code].sort();
    if (!(codes[0] === 0 && (codes[1] === 0 || codes[1] === 3))) violations.push(`racing rollups exited ${codes.join(', ')}: ${a.exit.stderr.slice(0, 200)} ${b.exit.stderr.slice(0, 200)}`);
    if (codes[1] === 3) refusals++;
    const final = JSON.parse(fs.readFileSync(path.join(raceOut, 'report.json'), 'utf8')) as { entries_read: number; duplicates: number };
    if (final.entries_read !== acked.length || final.duplicates !== 0) violations.push(`after the race the state counts ${final.entries_read} entries, ${final.duplicates} duplicates (expected ${acked.length}, 0)`);
  }
  return { scenario: 'concurrency: two consumers', runs: p.rounds * 2, entries: acked.length, lost: 0, duplicated: 0, maxRssMb: 0, notes: [`${refusals} refusals in ${p.rounds * 2} overlapping runs`], violations };
}

async function twoShippers(p: ConcurrencyParams, root: string): Promise<FaultResult> {
  const ledger = path.join(root, 'ledger');
  const bucket = path.join(root, 'bucket');
  const violations: string[] = [];
  const writers = Array.from({ length: p.writers }, () => startWriter(path.join(root, 'acks'), { ledger, count: p.entriesPerWriter, rate: 500 }));
  await until('writers to start writing', () => writers.every((w) => fs.existsSync(w.acks) && fs.statSync(w.acks).size > 0), 30_000);
  let refusals = 0;
  for (let round = 0; round < p.rounds; round++) {
    // A running shipper, then a second one: refused at once, naming the first.
    const first = startShipperProcess(ledger, bucket);
    await waitForStderr(first.child, 'shipper: started');
    const second = await waitExit(spawnCli(['ship', '--ledger-dir', ledger, '--dest', bucket, '--node', 'node-a'], { env: { ...process.env, METERING_LOG_LEVEL: 'info' } }));
    if (second.code === 3 && second.stderr.includes('another shipper is already running') && second.stderr.includes(String(first.child.pid))) refusals++;
    else violations.push(`second shipper: exit ${second.code}, ${second.stderr.slice(-300)}`);
    first.child.kill('SIGTERM');
    const r = await first.done;
    if (r.code !== 0) violations.push(`first shipper exited ${r.code}`);

    // Two started at the same moment: one ships, the other refuses (possibly after waiting out an unknown holder).
    const a = startShipperProcess(ledger, bucket);
    const b = startShipperProcess(ledger, bucket);
    const firstOut = await Promise.race([a.done.then((x) => ({ who: a, other: b, x })), b.done.then((x) => ({ who: b, other: a, x }))]);
    if (firstOut.x.code !== 3) violations.push(`of two shippers started together, the first to exit exited ${firstOut.x.code}/${firstOut.x.signal} instead of refusing: ${firstOut.x.stderr.slice(-300)}`);
    else refusals++;
    await sleep(200);
    if (firstOut.other.child.exitCode !== null) violations.push('both simultaneous shippers exited');
    firstOut.other.child.kill('SIGTERM');
    await firstOut.other.done;
  }
  const results = await Promise.all(writers.map((w) => w.done));
  for (const r of results) if (r.code !== 0) violations.push(`writer exited ${r.code}`);
  const final = await drainOnce(ledger, bucket);
  if (final.code !== 0) violations.push(`ship --once exited ${final.code}`);
  const check = await checkPipeline({ ledger, destination: new LocalDirDestination(bucket), source: bucket, out: path.join(root, 'out'), acked: acknowledgedIds(writers), killedWriters: 0 });
  return {
    scenario: 'concurrency: two shippers',
    runs: p.rounds * 2,
    entries: check.entries,
    lost: check.lost,
    duplicated: check.duplicated,
    maxRssMb: 0,
    notes: [`${refusals} refusals in ${p.rounds * 2} attempts to run a second shipper`, ...check.notes],
    violations: [...violations, ...check.violations],
  };
}

async function rotationUnderLoad(p: ConcurrencyParams, root: string): Promise<FaultResult> {
  const ledger = path.join(root, 'ledger');
  const bucket = path.join(root, 'bucket');
  const violations: string[] = [];
  fs.mkdirSync(ledger, { recursive: true });
  const shipper = startShipperProcess(ledger, bucket, ['--seal-quiet-ms', '100']);
  const rss = sampleRss(shipper.child.pid!);
  const writers = Array.from({ length: p.writers }, () => startWriter(path.join(root, 'acks'), { ledger, count: p.entriesPerWriter, maxSegmentBytes: 16 * 1024, pauseEvery: 10 }));
  try {
    const results = await Promise.all(writers.map((w) => w.done));
    let rotations = 0;
    for (const r of results) {
      if (r.code !== 0) violations.push(`writer exited ${r.code}: ${r.stderr.slice(0, 200)}`);
      rotations += JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '{}')?.stats?.rotations ?? 0;
    }
    const acked = acknowledgedIds(writers);
    await until('the shipper to catch up', () => {
      try {
        const s = JSON.parse(fs.readFileSync(path.join(ledger, '.shipper', 'status.json'), 'utf8')) as { backlog_bytes: number; counters: { ledger_lines: number } };
        return s.backlog_bytes === 0 && s.counters.ledger_lines === acked.length;
      } catch {
        return false;
      }
    }, 120_000);
    shipper.child.kill('SIGTERM');
    const stopped = await shipper.done;
    const maxRssMb = rss.stop();
    if (stopped.code !== 0) violations.push(`shipper exited ${stopped.code}`);
    const segments = listSegments(ledger).length;
    if (segments < 10) violations.push(`only ${segments} segments: rotation did not happen under load`);
    const check = await checkPipeline({ ledger, destination: new LocalDirDestination(bucket), source: bucket, out: path.join(root, 'out'), acked, killedWriters: 0 });
    return {
      scenario: 'concurrency: rotation under load',
      runs: rotations,
      entries: check.entries,
      lost: check.lost,
      duplicated: check.duplicated,
      maxRssMb,
      notes: [`${p.writers} writers at full speed, 16 KiB segments: ${rotations} rotations, ${segments} segments, shipped live`, ...check.notes],
      violations: [...violations, ...check.violations],
    };
  } finally {
    if (shipper.child.exitCode === null) shipper.child.kill('SIGKILL');
    for (const w of writers) if (w.child.exitCode === null) w.child.kill('SIGKILL');
  }
}
