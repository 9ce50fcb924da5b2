/**
 * Disk full, in each of the three places the pipeline writes, on a small tmpfs mounted for the
 * purpose (root only; otherwise the scenario reports itself skipped with the reason):
 * - ledger: writers keep emitting while the ledger filesystem (which also holds the shipper's
 *   state) is full. emit never throws, drops are counted and logged and show as seq gaps equal to
 *   the counted drops, the ledger stays parseable, recording resumes, everything acknowledged ships.
 * - bucket: the bucket directory fills while the shipper uploads. No half object is ever visible,
 *   no temp file is left behind, and shipping resumes when space returns.
 * - consumer-out: the rollup's --out fills. The run fails cleanly (non-zero exit, a message naming
 *   the problem), leaves no half or temp file, and a later run succeeds with the same figures.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { LocalDirDestination } from 'metering-ledger/sink';
import { filesUnder, partitionFiles } from '../support/read-outputs.js';
import { checkExactlyOnce, shippedObjects } from '../support/shipped.js';
import { fillDisk, mountTmpfs } from '../support/tmpfs.js';
import { acknowledgedIds, checkPipeline, drainOnce, removeRoot, runConsumer, sampleRss, sleep, startShipperProcess, startWriter, tempRoot, until, writerStats, type FaultResult, type WriterProcess } from './support.js';

export type DiskFullTarget = 'ledger' | 'bucket' | 'consumer-out';

export interface DiskFullParams {
  target: DiskFullTarget;
  /** How many times the disk fills up and frees again. */
  fills: number;
  /** How long each fill lasts. */
  fullMs: number;
  writers: number;
  entriesPerWriter: number;
  ratePerWriter: number;
  /** Size of the tmpfs; it must hold everything written, plus room to spare between fills. */
  tmpfsMb: number;
}

const skipped = (scenario: string, reason: string): FaultResult => ({ scenario, runs: 0, entries: 0, lost: 0, duplicated: 0, maxRssMb: 0, notes: [`SKIPPED: ${reason}`], violations: [] });

export async function run(p: DiskFullParams): Promise<FaultResult> {
  const scenario = `disk full: ${p.target}`;
  const mount = mountTmpfs(p.tmpfsMb * 1024 * 1024);
  if ('skip' in mount) return skipped(scenario, mount.skip);
  const root = tempRoot(`full-${p.target}`);
  try {
    if (p.target === 'bucket') {
      const leaks = await probeFailedPuts(mount.dir);
      if (leaks.length) {
        return { ...skipped(scenario, ''), notes: [], runs: 1, violations: [`a put that failed on a full disk left: ${leaks.join(', ')}`] };
      }
    }
    if (p.target === 'consumer-out') return await consumerOut(p, scenario, root, mount.dir);
    return await shipping(p, scenario, root, mount.dir);
  } finally {
    mount.unmount();
    removeRoot(root);
  }
}

/** Writes a ballast file until the filesystem refuses (others are writing to it meanwhile). */
function fillUp(dir: string, n: number): string {
  const ballast = path.join(dir, `ballast-${n}`);
  const fd = fs.openSync(ballast, 'w');
  const chunk = Buffer.alloc(16 * 1024);
  try {
    for (;;) fs.writeSync(fd, chunk);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  } finally {
    fs.closeSync(fd);
  }
  return ballast;
}

/**
 * Deterministic first: with exactly one page free, a put's body fits and its metadata does not (and
 * vice versa for smaller gaps). Whatever fails, no temp file or stray metadata may stay behind.
 */
async function probeFailedPuts(tmpfs: string): Promise<string[]> {
  const dest = new LocalDirDestination(path.join(tmpfs, 'probe'));
  await dest.put('warm/up', Buffer.from('x'));
  const leaks: string[] = [];
  for (const free of [0, 4096, 8192]) {
    for (const op of ['put', 'putIfAbsent'] as const) {
      const ballast = fillDisk(tmpfs, free);
      const name = `probe/${op}-${free}`;
      await (op === 'put' ? dest.put(name, Buffer.alloc(100)) : dest.putIfAbsent(name, Buffer.alloc(100))).catch(() => undefined);
      fs.rmSync(ballast);
      const stored = (await dest.get(name)) !== undefined;
      for (const f of tempFiles(path.join(tmpfs, 'probe'))) leaks.push(`${op} with ${free} bytes free: ${f}`);
      const metas = fs.existsSync(path.join(tmpfs, 'probe', '.meta', 'probe')) ? fs.readdirSync(path.join(tmpfs, 'probe', '.meta', 'probe')).filter((m) => m.startsWith(`${op}-${free}.`)) : [];
      if (!stored && metas.length) leaks.push(`${op} with ${free} bytes free: metadata ${metas.join(', ')} without its object`);
      fs.rmSync(path.join(tmpfs, 'probe', '.tmp'), { recursive: true, force: true });
    }
  }
  fs.rmSync(path.join(tmpfs, 'probe'), { recursive: true, force: true });
  return leaks;
}

/** A leftover temp/partial file anywhere under `dir` (the ballast aside). */
function tempFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.tmp$|^\.tmp$/.test(e.name) || path.basename(d) === '.tmp') out.push(path.relative(dir, p));
    }
  };
  walk(dir);
  return out;
}

async function shipping(p: DiskFullParams, scenario: string, root: string, tmpfs: string): Promise<FaultResult> {
  const violations: string[] = [];
  const notes: string[] = [];
  const ledger = p.target === 'ledger' ? path.join(tmpfs, 'ledger') : path.join(root, 'ledger');
  const bucket = p.target === 'bucket' ? path.join(tmpfs, 'bucket') : path.join(root, 'bucket');
  const acksDir = path.join(root, 'acks');
  fs.mkdirSync(ledger, { recursive: true });
  const shipper = startShipperProcess(ledger, bucket);
  const rss = sampleRss(shipper.child.pid!);
  const writers: WriterProcess[] = Array.from({ length: p.writers }, () => startWriter(acksDir, { ledger, count: p.entriesPerWriter, rate: p.ratePerWriter, env: { METERING_LOG_LEVEL: 'warn' } }));
  try {
    return await shippingUnderFill(p, scenario, root, tmpfs, { ledger, bucket, shipper, rss, writers, violations, notes });
  } finally {
    for (const c of [shipper.child, ...writers.map((w) => w.child)]) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await Promise.allSettled([shipper.done, ...writers.map((w) => w.done)]);
  }
}

interface Running {
  ledger: string;
  bucket: string;
  shipper: ReturnType<typeof startShipperProcess>;
  rss: ReturnType<typeof sampleRss>;
  writers: WriterProcess[];
  violations: string[];
  notes: string[];
}

async function shippingUnderFill(p: DiskFullParams, scenario: string, root: string, tmpfs: string, { ledger, bucket, shipper, rss, writers, violations, notes }: Running): Promise<FaultResult> {
  await until('writers to start writing', () => writers.every((w) => fs.existsSync(w.acks) && fs.statSync(w.acks).size > 0), 30_000);
  const destination = new LocalDirDestination(bucket);
  let fullChecks = 0;
  for (let i = 0; i < p.fills; i++) {
    await sleep(300 + Math.random() * 300);
    const ballast = fillUp(tmpfs, i);
    const until = Date.now() + p.fullMs;
    while (Date.now() < until) {
      await sleep(150);
      if (p.target === 'bucket') {
        // While full: whatever is visible is whole (tiles the ledger bytes it claims, parses fully).
        const problems = checkExactlyOnce(ledger, await shippedObjects(destination));
        for (const x of problems) violations.push(`while the bucket was full: ${x}`);
        fullChecks++;
      }
    }
    fs.rmSync(ballast);
  }
  // Recording resumes: every writer acknowledges new entries after the last fill is gone.
  const ackSize = (w: WriterProcess): number => fs.statSync(w.acks).size;
  const sizes = writers.map(ackSize);
  await until('writers to acknowledge entries again', () => writers.every((w, i) => ackSize(w) > sizes[i]! || w.child.exitCode !== null), 30_000);
  writers.forEach((w, i) => {
    if (!(ackSize(w) > sizes[i]!)) violations.push('a writer ended before recording resumed (make the writers outlast the fills)');
  });
  const results = await Promise.all(writers.map((w) => w.done));
  let dropped = 0;
  for (const r of results) {
    if (r.code !== 0) violations.push(`writer exited ${r.code}: ${r.stderr.slice(0, 300)}`);
    dropped += writerStats(r)?.stats.droppedWrite ?? 0;
  }
  const stderr = results.map((r) => r.stderr).join('');
  if (p.target === 'ledger') {
    if (dropped === 0) violations.push('no write was dropped: the disk never filled under the writers (the scenario proved nothing)');
    if (dropped > 0 && !/ledger write failed; entry dropped/.test(stderr)) violations.push('drops were not logged');
    if (dropped > 0 && !/ENOSPC/.test(stderr)) violations.push('the drop log does not name ENOSPC');
    const warnings = stderr.split('\n').filter((l) => l.includes('ledger write failed')).length;
    notes.push(`${dropped} emits dropped while full (counted, logged ${warnings} times: rate-limited)`);
  }
  // The shipper must still be alive after the disk filled under it, and drain once space is back.
  if (shipper.child.exitCode !== null) violations.push(`the shipper died while the disk was full: ${(await shipper.done).stderr.slice(-500)}`);
  shipper.child.kill('SIGTERM');
  const stopped = await shipper.done;
  const maxRssMb = rss.stop();
  if (stopped.code !== 0) violations.push(`shipper did not stop cleanly (exit ${stopped.code}/${stopped.signal}): ${stopped.stderr.slice(-500)}`);
  if (p.target === 'bucket' && !/ENOSPC/.test(stopped.stderr)) violations.push('the shipper never met ENOSPC (the bucket did not fill under it)');
  const final = await drainOnce(ledger, bucket);
  if (final.code !== 0) violations.push(`ship --once after space returned exited ${final.code}: ${final.stderr.slice(-500)}`);
  if (p.target === 'bucket') {
    const leftovers = tempFiles(bucket);
    if (leftovers.length) violations.push(`temp files left in the bucket directory after space returned: ${leftovers.slice(0, 5).join(', ')} (${leftovers.length})`);
    notes.push(`${fullChecks} checks of the bucket while full found no half object`);
  }
  const acked = acknowledgedIds(writers);
  const check = await checkPipeline({
    ledger,
    destination,
    source: bucket,
    out: path.join(root, 'out'),
    acked,
    killedWriters: 0,
    expectedSeqGaps: dropped,
    // A write cut short by the full disk leaves one fragment; the recorder ends it with a newline.
    allowInvalidLedgerLines: p.target === 'ledger' ? p.writers * p.fills : 0,
  });
  return { scenario, runs: p.fills, entries: check.entries, lost: check.lost, duplicated: check.duplicated, maxRssMb, notes: [...notes, ...check.notes], violations: [...violations, ...check.violations] };
}

async function consumerOut(p: DiskFullParams, scenario: string, root: string, tmpfs: string): Promise<FaultResult> {
  const violations: string[] = [];
  const ledger = path.join(root, 'ledger');
  const bucket = path.join(root, 'bucket');
  const writers = Array.from({ length: p.writers }, () => startWriter(path.join(root, 'acks'), { ledger, count: p.entriesPerWriter }));
  for (const r of await Promise.all(writers.map((w) => w.done))) if (r.code !== 0) violations.push(`writer exited ${r.code}: ${r.stderr.slice(0, 300)}`);
  const shipped = await drainOnce(ledger, bucket);
  if (shipped.code !== 0) violations.push(`ship --once exited ${shipped.code}: ${shipped.stderr.slice(-300)}`);
  const acked = acknowledgedIds(writers);
  // One consumer clock for every run, so outputs can be compared byte for byte.
  const now = ['--now', new Date(Date.now() + 60_000).toISOString()];
  const reference = await runConsumer(bucket, path.join(root, 'reference'), now);
  if (!reference.report) violations.push(`reference rollup failed: ${reference.exit.stderr.slice(0, 300)}`);

  const out = path.join(tmpfs, 'out');
  let failures = 0;
  for (let i = 0; i < p.fills; i++) {
    // Leave room for a few KiB: the run gets some way into its writes before ENOSPC.
    const ballast = fillDisk(tmpfs, ((i + 1) % 4) * 16 * 1024);
    const full = await runConsumer(bucket, out, now);
    fs.rmSync(ballast);
    if (full.exit.code === 0) {
      violations.push(`rollup with ${((i + 1) % 4) * 16} KiB free exited 0 (expected a clean failure)`);
      continue;
    }
    failures++;
    if (!/ENOSPC|no space/i.test(full.exit.stderr)) violations.push(`the failure does not say the disk is full: ${full.exit.stderr.slice(0, 300)}`);
    if (/at .*\.ts:\d+/.test(full.exit.stderr)) violations.push('the failure printed a stack trace instead of a message');
    const leftovers = tempFiles(tmpfs);
    if (leftovers.length) violations.push(`temp files left after the failed run: ${leftovers.join(', ')}`);
    // Any output file present is whole (complete JSON lines / a complete report); the state database is DuckDB's to keep whole.
    if (fs.existsSync(out)) {
      for (const f of filesUnder(out).filter((rel) => !rel.startsWith('state.duckdb'))) {
        const text = fs.readFileSync(path.join(out, f), 'utf8');
        try {
          if (f.endsWith('.ndjson')) {
            if (text.length && !text.endsWith('\n')) throw new Error('no final newline');
            text.split('\n').filter(Boolean).forEach((l) => JSON.parse(l));
          } else if (f.endsWith('.json')) JSON.parse(text);
        } catch (err) {
          violations.push(`half output file ${f} after the failed run: ${(err as Error).message}`);
        }
      }
    }
  }
  const later = await runConsumer(bucket, out, now);
  let lost = 0;
  let duplicated = 0;
  if (!later.report) violations.push(`the rollup after space returned failed: ${later.exit.stderr.slice(0, 300)}`);
  else {
    if (later.report.entries_read !== acked.length) violations.push(`later rollup read ${later.report.entries_read} entries, ${acked.length} acknowledged`);
    lost = Math.max(0, acked.length - later.report.entries_read);
    duplicated = later.report.duplicates;
    for (const output of ['intervals', 'hourly'] as const) {
      const bytes = (dir: string): string => partitionFiles(dir, output).map((f) => `${path.relative(dir, f)}\n${fs.readFileSync(f, 'utf8')}`).join('');
      if (bytes(out) !== bytes(path.join(root, 'reference'))) violations.push(`${output} partitions after the failed runs differ from a run that never failed`);
    }
  }
  return { scenario, runs: p.fills, entries: acked.length, lost, duplicated, maxRssMb: 0, notes: [`${failures} rollups failed cleanly on a full --out, then one succeeded with the same outputs as an undisturbed run`], violations };
}
