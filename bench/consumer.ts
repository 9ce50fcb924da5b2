/**
 * Consumer benchmark, side by side in one run on one machine: `metering rollup` (the compiled CLI,
 * one process) vs the DuckDB twin (runSqlRollup: sink/sql/rules on embedded DuckDB, with its state database) over the same objects, at 1/10,
 * 3/10 and all of --entries (default 10 M). The fleet: 10 nodes × 1,000 VMs starting, stopping,
 * reporting baselines, snapshotting (oldest snapshots deleted), written by the real recorder and
 * cut into objects as the shipper cuts them. The smaller sets are the same fleet over a shorter
 * time (each node's first objects), so growth is growth in time, the way a ledger grows; the full
 * set spans ~14 days, past the 7-day retention after which the consumer folds timelines.
 *
 *   npm run bench -- consumer [--entries 10000000] [--nodes 10] [--span-days 14] [--rollup-limit-s 360] [--profile-dir DIR] [--keep]
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { buildCli } from './support/build.js';
import { runMeasured, spawnMeasured, type ChildUsage } from './support/child.js';
import type { ShippedObject } from './support/node-objects.js';
import { int, machineLine, memoryBreakdown, mib, secs, table, targetLines, type Target } from './support/report.js';

const { values } = parseArgs({
  options: {
    entries: { type: 'string', default: '10000000' },
    nodes: { type: 'string', default: '10' },
    'span-days': { type: 'string', default: '14' },
    'rollup-limit-s': { type: 'string', default: '360' },
    'profile-dir': { type: 'string' },
    keep: { type: 'boolean', default: false },
  },
  strict: false,
  allowPositionals: true,
});
const ENTRIES = Number(values.entries);
const NODES = Number(values.nodes);
if (!(Number.isInteger(ENTRIES) && ENTRIES >= 1000)) throw new Error('--entries must be an integer >= 1000');
if (!(Number.isInteger(NODES) && NODES >= 1)) throw new Error('--nodes must be a positive integer');
const PROFILE_DIR = typeof values['profile-dir'] === 'string' ? path.resolve(values['profile-dir']) : undefined;
const FRACTIONS = [0.1, 0.3, 1];
/** A rollup still running after this is killed and reported as such: the whole suite must end. */
const ROLLUP_LIMIT_MS = Number(values['rollup-limit-s']) * 1000;
const SPAN_MS = Number(values['span-days']) * 86_400_000;
if (!(SPAN_MS > 0)) throw new Error('--span-days must be a positive number');
const START_MS = Date.UTC(2026, 10, 1);

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-consumer-'));
const cli = buildCli(work);

/** Every node's objects, made by node-objects.ts in parallel child processes (one per core). */
async function makeFleet(bucket: string): Promise<Map<string, ShippedObject[]>> {
  const perNode = Math.ceil(ENTRIES / NODES);
  const stepMs = Math.max(1, Math.floor(SPAN_MS / perNode));
  // The shipper's default 8 MiB objects; smaller when scaled down, so the 1/10 subset still has
  // several objects per node (~310 bytes per entry).
  const batchBytes = Math.round(Math.min(8 * 1024 * 1024, Math.max(64 * 1024, (perNode * 310) / 30)));
  const nodes = Array.from({ length: NODES }, (_, i) => `node-${String(i).padStart(2, '0')}`);
  const fleet = new Map<string, ShippedObject[]>();
  const queue = [...nodes];
  const worker = async (): Promise<void> => {
    for (let node = queue.shift(); node !== undefined; node = queue.shift()) {
      const r = await runMeasured(['bench/support/node-objects.ts', '--bucket', bucket, '--node', node, '--entries', String(perNode), '--step-ms', String(stepMs), '--start-ms', String(START_MS), '--batch-bytes', String(batchBytes)], { typescript: true });
      fleet.set(
        node,
        r.stdout
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l) as ShippedObject),
      );
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, os.cpus().length) }, worker));
  return fleet;
}

interface Subset {
  dir: string;
  entries: number;
  objects: number;
  bytes: number;
  nowMs: number;
}

/** A bucket with each node's first objects up to `fraction` of its entries (hard links), plus progress. */
function subset(full: string, fleet: Map<string, ShippedObject[]>, fraction: number): Subset {
  const dir = path.join(work, `bucket-${fraction}`);
  let entries = 0;
  let objects = 0;
  let bytes = 0;
  const through = new Map<string, number>();
  for (const [node, objs] of fleet) {
    const total = objs.reduce((s, o) => s + o.entries, 0);
    let taken = 0;
    for (const o of objs) {
      if (taken >= total * fraction - 1e-9 && taken > 0) break;
      const to = path.join(dir, ...o.name.split('/'));
      fs.mkdirSync(path.dirname(to), { recursive: true });
      fs.linkSync(path.join(full, ...o.name.split('/')), to);
      taken += o.entries;
      objects++;
      bytes += fs.statSync(to).size;
      through.set(node, o.lastMs);
    }
    entries += taken;
  }
  // The consumer's clock: a little after the newest entry; every node reported a minute ago.
  const nowMs = Math.max(...through.values()) + 10 * 60_000;
  fs.mkdirSync(path.join(dir, 'nodes'), { recursive: true });
  for (const [node, lastMs] of through) {
    const iso = new Date(lastMs + 1).toISOString();
    const progress = { v: 1, node, reported_at: new Date(nowMs - 60_000).toISOString(), complete_through: iso, backlog_bytes: 0, writers: {} };
    fs.writeFileSync(path.join(dir, 'nodes', `${node}.json`), JSON.stringify(progress));
  }
  return { dir, entries, objects, bytes, nowMs };
}

interface Row {
  set: Subset;
  /** Undefined when not run (it failed on a smaller set). */
  rollup: ChildUsage | undefined;
  /** Undefined when the rollup failed (its error is in rollup.stderr). */
  rollupCounts: { entries: number; intervals: number; hourly: number } | undefined;
  duck: ChildUsage;
  /** Undefined when DuckDB failed. */
  duckCounts: { intervals: number; hourly: number; threads: number } | undefined;
}

function parseRollupOutput(out: string): Row['rollupCounts'] {
  const m1 = /read \d+ new objects, (\d+) entries/.exec(out);
  const m2 = /intervals (\d+) .*hourly rows (\d+)/.exec(out);
  if (!m1 || !m2) throw new Error(`unexpected rollup output:\n${out}`);
  return { entries: Number(m1[1]), intervals: Number(m2[1]), hourly: Number(m2[2]) };
}

/** Why a child failed: timeout, V8's fatal error line, or the last line of its stderr. */
function failure(u: ChildUsage): string {
  if (u.timedOut) return `killed after ${secs(u.wallMs)} s (time limit)`;
  const lines = u.stderr.trim().split('\n');
  const fatal = lines.find((l) => l.includes('FATAL ERROR'));
  return `failed (exit ${u.code ?? u.signal}): ${(fatal ?? lines.at(-1) ?? '').trim()}`;
}

async function runDuck(set: Subset, fraction: number, tag: string, threads?: number): Promise<Pick<Row, 'duck' | 'duckCounts'>> {
  const args = ['bench/support/duckdb-twin.ts', '--bucket', set.dir, '--out', path.join(work, `duck-${fraction}`), '--now-ms', String(set.nowMs)];
  const duck = await spawnMeasured(threads ? [...args, '--threads', String(threads)] : args, {
    typescript: true,
    ...prof(`duckdb-${tag}`),
    timeoutMs: ROLLUP_LIMIT_MS,
  }).done;
  const duckCounts = duck.code === 0 ? (JSON.parse(duck.stdout) as NonNullable<Row['duckCounts']>) : undefined;
  if (!duckCounts) console.log(`DuckDB over ${int(set.entries)} entries ${failure(duck)}`);
  return { duck, duckCounts };
}

/** DuckDB on one thread over the smallest set. */
let singleThread: { entries: number; duck: ChildUsage } | undefined;

function cleanup(set: Subset, fraction: number): void {
  fs.rmSync(path.join(work, `out-${fraction}`), { recursive: true, force: true });
  fs.rmSync(path.join(work, `duck-${fraction}`), { recursive: true, force: true });
  if (fraction !== 1) fs.rmSync(set.dir, { recursive: true, force: true });
}

const prof = (name: string) => (PROFILE_DIR ? { cpuProfileDir: PROFILE_DIR, profileName: name } : {});

try {
  const full = path.join(work, 'bucket');
  let t = performance.now();
  const fleet = await makeFleet(full);
  console.log(`fleet: ${NODES} nodes, ${int([...fleet.values()].flat().reduce((s, o) => s + o.entries, 0))} entries, written by the recorder and cut into objects in ${secs(performance.now() - t)} s`);

  const rows: Row[] = [];
  for (const fraction of FRACTIONS) {
    const set = subset(full, fleet, fraction);
    const tag = `${Math.round(set.entries / 1e5) / 10}M`;
    const now = new Date(set.nowMs).toISOString();
    // A failed rollup is a result (e.g. out of memory at this size): recorded, and DuckDB still runs.
    // After a failure, larger sets are not tried (they would fail the same way, slower).
    const previous = rows.at(-1);
    if (previous && !previous.rollupCounts) {
      console.log(`rollup over ${int(set.entries)} entries: not run, it failed on a smaller set`);
      const duck = await runDuck(set, fraction, tag);
      rows.push({ set, rollup: undefined, rollupCounts: undefined, ...duck });
      cleanup(set, fraction);
      continue;
    }
    const rollup = await spawnMeasured([cli.bin, 'rollup', '--source', set.dir, '--out', path.join(work, `out-${fraction}`), '--now', now], { ...prof(`rollup-${tag}`), sampleMemoryMs: 50, timeoutMs: ROLLUP_LIMIT_MS }).done;
    const rollupCounts = rollup.code === 0 ? parseRollupOutput(rollup.stdout) : undefined;
    if (rollupCounts && rollupCounts.entries !== set.entries) throw new Error(`rollup read ${rollupCounts.entries} entries, expected ${set.entries}`);
    if (!rollupCounts) console.log(`rollup over ${int(set.entries)} entries ${failure(rollup)}`);
    rows.push({ set, rollup, rollupCounts, ...(await runDuck(set, fraction, tag)) });
    if (fraction === FRACTIONS[0]) {
      // DuckDB uses every core; once on one thread too, for a per-core comparison with the JS rollup.
      const one = await runDuck(set, fraction, `${tag}-1thread`, 1);
      if (one.duckCounts) singleThread = { entries: set.entries, duck: one.duck };
    }
    cleanup(set, fraction);
  }

  const eps = (n: number, u: ChildUsage): number => n / (u.wallMs / 1000);
  const duckOk = (r: Row): boolean => r.duckCounts !== undefined;
  /** The rollup's usage when it ran to completion. */
  const done = (r: Row): ChildUsage | undefined => (r.rollupCounts ? r.rollup : undefined);
  const rollupCell = (r: Row): string => (!r.rollup ? 'not run' : r.rollupCounts ? secs(r.rollup.wallMs) : `${secs(r.rollup.wallMs)} FAILED`);
  console.log(`\nConsumer: metering rollup (${cli.note}) vs DuckDB twin runSqlRollup (threads: ${rows.find(duckOk)?.duckCounts?.threads ?? '?'}), same objects; ${machineLine()}\n`);
  console.log(
    table(
      ['entries', 'objects', 'MiB', 'rollup s', 'rollup entries/s', 'rollup peak RSS MiB', 'DuckDB s', 'DuckDB entries/s', 'DuckDB peak RSS MiB', 'rollup / DuckDB', 'intervals, hourly rows (rollup | DuckDB)'],
      rows.map((r) => {
        const u = done(r);
        return [
          int(r.set.entries),
          r.set.objects,
          mib(r.set.bytes),
          rollupCell(r),
          u ? int(eps(r.set.entries, u)) : '-',
          r.rollup ? mib(r.rollup.maxRssBytes) : '-',
          duckOk(r) ? secs(r.duck.wallMs) : `${secs(r.duck.wallMs)} FAILED`,
          duckOk(r) ? int(eps(r.set.entries, r.duck)) : '-',
          mib(r.duck.maxRssBytes),
          u && duckOk(r) ? `${(eps(r.set.entries, u) / eps(r.set.entries, r.duck)).toFixed(2)}x` : '-',
          `${r.rollupCounts ? `${int(r.rollupCounts.intervals)}, ${int(r.rollupCounts.hourly)}` : '-'} | ${r.duckCounts ? `${int(r.duckCounts.intervals)}, ${int(r.duckCounts.hourly)}` : '-'}`,
        ];
      }),
    ),
  );
  for (const r of rows) {
    if (r.rollup) console.log(`\nrollup over ${int(r.set.entries)} entries: ${r.rollupCounts ? '' : `${failure(r.rollup)}; `}memory ${memoryBreakdown(r.rollup.atPeak)}`);
    if (!duckOk(r)) console.log(`DuckDB over ${int(r.set.entries)} entries: ${failure(r.duck)}`);
    if (r.rollupCounts && r.duckCounts && (r.rollupCounts.intervals !== r.duckCounts.intervals || r.rollupCounts.hourly !== r.duckCounts.hourly)) console.log('WARNING: rollup and DuckDB disagree on the number of intervals or hourly rows');
  }
  if (singleThread) {
    const r = rows[0]!;
    const u = done(r);
    console.log(
      `\nDuckDB on 1 thread over ${int(singleThread.entries)} entries: ${secs(singleThread.duck.wallMs)} s, ${int(eps(singleThread.entries, singleThread.duck))} entries/s, peak RSS ${mib(singleThread.duck.maxRssBytes)} MiB${u ? `; rollup / DuckDB (1 thread) = ${(eps(r.set.entries, u) / eps(singleThread.entries, singleThread.duck)).toFixed(2)}x` : ''}`,
    );
  }
  const completed = rows.filter((r) => done(r) !== undefined);
  const largest = rows.at(-1)!;
  const targets: Target[] = [{ what: `rollup completes at ${int(largest.set.entries)} entries`, value: done(largest) ? 1 : 0, shown: done(largest) ? 'yes' : 'no', target: 'completes', met: done(largest) !== undefined }];
  const lastBoth = completed.filter(duckOk).at(-1);
  if (lastBoth) targets.push({ what: `rollup / DuckDB entries/s at ${int(lastBoth.set.entries)}`, value: eps(lastBoth.set.entries, done(lastBoth)!) / eps(lastBoth.set.entries, lastBoth.duck), target: 'none set; side by side', met: undefined });
  const first = completed[0];
  const last = completed.at(-1);
  if (first && last && first !== last) {
    const f = done(first)!;
    const l = done(last)!;
    // Linear: the cost per entry at the largest size is within 25% of the smallest's (start-up included).
    const perEntry = l.wallMs / last.set.entries / (f.wallMs / first.set.entries);
    const rss = l.maxRssBytes / f.maxRssBytes;
    const scale = (last.set.entries / first.set.entries).toFixed(1);
    targets.push(
      { what: `rollup time per entry, ${int(last.set.entries)} vs ${int(first.set.entries)}`, value: perEntry, target: '<= 1.25x (linear)', met: perEntry <= 1.25 },
      { what: `rollup peak RSS, ${int(last.set.entries)} vs ${int(first.set.entries)} (${scale}x entries)`, value: rss, target: '<= 2x (bounded)', met: rss <= 2 },
    );
  }
  if (last) targets.push({ what: `rollup peak RSS at ${int(last.set.entries)}`, value: done(last)!.maxRssBytes, shown: `${mib(done(last)!.maxRssBytes)} MiB`, target: 'report', met: undefined });
  console.log('\n' + targetLines(targets));
  if (PROFILE_DIR) console.log(`\nCPU profiles: ${PROFILE_DIR} (summarise: node --import tsx bench/support/cpuprofile-summary.ts ${PROFILE_DIR}/*.cpuprofile)`);
} finally {
  if (values.keep) console.log(`kept ${work}`);
  else fs.rmSync(work, { recursive: true, force: true });
}
