/**
 * Shipper benchmark, side by side in one run on one machine:
 *  - drain a backlog (default 1 GiB, the real recorder's bytes) with `metering ship --once` to a
 *    directory destination and to the GCS test server (own process, objects on disk), vs the raw
 *    limit of copying the same bytes with `cat` to the same disk; peak RSS of the shipper process;
 *  - emit-to-object latency with the shipper daemon (default batching) while a writer process emits
 *    a steady 1,000 entries/s: the time from an entry's emitted_at to the poll that first sees the
 *    object holding it (polls every 10 ms, so at most 10 ms late);
 *  - idle CPU of that daemon once the writer has stopped (utime+stime from /proc over 10 s).
 *
 *   npm run bench -- shipping [--backlog-mb 1024] [--rate 1000] [--latency-seconds 30] [--idle-seconds 10] [--profile-dir DIR] [--keep]
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { buildBacklog } from './support/backlog.js';
import { buildCli } from './support/build.js';
import { procCpuMs, procRss, runMeasured, sleep, spawnMeasured, type ChildUsage } from './support/child.js';
import { startGcsChild } from './support/gcs-child.js';
import { int, machineLine, memoryBreakdown, mib, percentile, secs, table, targetLines, type Target } from './support/report.js';

// Not strict: `npm run bench -- --flag` hands every flag to every benchmark.
const { values } = parseArgs({
  options: {
    'backlog-mb': { type: 'string', default: '1024' },
    rate: { type: 'string', default: '1000' },
    'latency-seconds': { type: 'string', default: '30' },
    'idle-seconds': { type: 'string', default: '10' },
    'profile-dir': { type: 'string' },
    keep: { type: 'boolean', default: false },
  },
  strict: false,
  allowPositionals: true,
});
const BACKLOG_MB = Number(values['backlog-mb']);
const RATE = Number(values.rate);
const LATENCY_S = Number(values['latency-seconds']);
const IDLE_S = Number(values['idle-seconds']);
const PROFILE_DIR = typeof values['profile-dir'] === 'string' ? path.resolve(values['profile-dir']) : undefined;
for (const [k, v] of Object.entries({ 'backlog-mb': BACKLOG_MB, rate: RATE, 'latency-seconds': LATENCY_S, 'idle-seconds': IDLE_S })) {
  if (!(Number.isFinite(v) && v > 0)) throw new Error(`--${k} must be a positive number`);
}

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-shipping-'));
const NODE = 'bench';
const cli = buildCli(work);
const prof = (name: string) => (PROFILE_DIR ? { cpuProfileDir: PROFILE_DIR, profileName: name } : {});

interface Drain {
  name: string;
  usage: ChildUsage;
  bytes: number;
}

/** `metering ship --once`; checks from the shipper's status that every ledger byte and line went out. */
async function drain(name: string, ledger: string, dest: string, extra: string[], expect: { bytes: number; entries: number }): Promise<Drain> {
  const stateDir = path.join(work, `state-${name.replace(/\W+/g, '-')}`);
  const usage = await runMeasured([cli.bin, 'ship', '--once', '--ledger-dir', ledger, '--dest', dest, '--node', NODE, '--state-dir', stateDir, ...extra], { ...prof(`ship-${name.replace(/\W+/g, '-')}`), sampleMemoryMs: 20 });
  const status = JSON.parse(fs.readFileSync(path.join(stateDir, 'status.json'), 'utf8')) as { backlog_bytes: number; counters: { ledger_lines: number; quarantined_lines: number } };
  if (status.backlog_bytes !== 0 || status.counters.ledger_lines !== expect.entries || status.counters.quarantined_lines !== 0) {
    throw new Error(`${name}: shipped ${status.counters.ledger_lines}/${expect.entries} lines, backlog ${status.backlog_bytes}, quarantined ${status.counters.quarantined_lines}`);
  }
  return { name, usage, bytes: expect.bytes };
}

/**
 * The raw limit: the same bytes copied by `cat` into one file on the same disk; `fsyncMs` is the
 * one fsync that makes the copy durable, as the shipper's directory destination makes every object.
 */
function catCopy(files: string[], bytes: number): { ms: number; fsyncMs: number; bytes: number } {
  const out = path.join(work, 'cat-copy.jsonl');
  const fd = fs.openSync(out, 'w');
  const t0 = performance.now();
  const r = spawnSync('cat', files, { stdio: ['ignore', fd, 'inherit'] });
  const ms = performance.now() - t0;
  fs.fsyncSync(fd);
  const fsyncMs = performance.now() - t0 - ms;
  fs.closeSync(fd);
  if (r.status !== 0) throw new Error('cat failed');
  if (fs.statSync(out).size !== bytes) throw new Error('cat copied a different number of bytes');
  fs.rmSync(out);
  return { ms, fsyncMs, bytes };
}

/** Every ledger object file under a directory destination. */
function objectFiles(dir: string, out: string[] = []): string[] {
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return out;
  }
  for (const e of entries) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) objectFiles(p, out);
    else if (e.name.endsWith('.ndjson')) out.push(p);
  }
  return out;
}

interface LatencyResult {
  latencies: Float64Array;
  expected: number;
  objects: number;
  peakRssBytes: number;
  idleCpuMsPerS: number;
  idleRssBytes: number;
  usage: ChildUsage;
}

async function latencyAndIdle(): Promise<LatencyResult> {
  const ledger = path.join(work, 'live-ledger');
  const bucket = path.join(work, 'live-bucket');
  const stateDir = path.join(work, 'live-state');
  fs.mkdirSync(ledger);
  const shipper = spawnMeasured([cli.bin, 'ship', '--ledger-dir', ledger, '--dest', bucket, '--node', NODE, '--state-dir', stateDir], prof('ship-daemon'));
  let exited = false;
  void shipper.done.then(() => (exited = true));
  // Ready once it has written its first status.
  for (let i = 0; !fs.existsSync(path.join(stateDir, 'status.json')); i++) {
    if (exited || i > 600) throw new Error(`shipper did not start: ${(await shipper.done).stderr}`);
    await sleep(50);
  }
  const expected = Math.round(RATE * LATENCY_S);
  const writer = spawnMeasured(['test/fixtures/ledger-writer.ts', '--dir', ledger, '--node', NODE, '--count', String(expected), '--rate', String(RATE), '--pause-every', '0'], { typescript: true });
  let writerDone = false;
  void writer.done.then(() => (writerDone = true));

  const seen = new Set<string>();
  const ids = new Set<string>();
  const lat: number[] = [];
  let deadline = Infinity;
  while (ids.size < expected && Date.now() < deadline) {
    if (writerDone && deadline === Infinity) deadline = Date.now() + 15_000;
    for (const f of objectFiles(path.join(bucket, 'ledger'))) {
      if (seen.has(f)) continue;
      seen.add(f);
      const now = Date.now();
      for (const line of fs.readFileSync(f, 'utf8').split('\n')) {
        if (!line) continue;
        const e = JSON.parse(line) as { id: string; emitted_at: string };
        if (ids.has(e.id)) continue;
        ids.add(e.id);
        lat.push(now - Date.parse(e.emitted_at));
      }
    }
    await sleep(10);
  }
  const w = await writer.done;
  if (w.code !== 0) throw new Error(`writer failed: ${w.stderr}`);
  if (ids.size !== expected) throw new Error(`only ${ids.size}/${expected} entries reached the bucket`);
  const peakRssBytes = procRss(shipper.pid).hwmBytes;

  // Idle: nothing written any more; let the last progress rewrite pass, then count CPU ticks.
  await sleep(3000);
  const c0 = procCpuMs(shipper.pid);
  const t0 = performance.now();
  await sleep(IDLE_S * 1000);
  const idleCpuMsPerS = (procCpuMs(shipper.pid) - c0) / ((performance.now() - t0) / 1000);
  const idleRssBytes = procRss(shipper.pid).rssBytes;
  shipper.child.kill('SIGTERM');
  const usage = await shipper.done;
  if (usage.code !== 0) throw new Error(`shipper daemon exited ${usage.code ?? usage.signal}: ${usage.stderr}`);
  return { latencies: Float64Array.from(lat).sort(), expected, objects: seen.size, peakRssBytes, idleCpuMsPerS, idleRssBytes, usage };
}

try {
  const ledger = path.join(work, 'ledger');
  fs.mkdirSync(ledger);
  let t = performance.now();
  const backlog = await buildBacklog(ledger, NODE, BACKLOG_MB * 1024 * 1024);
  console.log(`backlog: ${int(backlog.entries)} entries, ${mib(backlog.bytes)} MiB in ${backlog.segments.length} segments, written by the recorder in ${secs(performance.now() - t)} s`);
  const expect = { bytes: backlog.bytes, entries: backlog.entries };

  // The fixed cost of a run (process start, tsx, lock, listing) on an empty ledger, to show it apart.
  const emptyLedger = path.join(work, 'empty-ledger');
  fs.mkdirSync(emptyLedger);
  const empty = await runMeasured([cli.bin, 'ship', '--once', '--ledger-dir', emptyLedger, '--dest', path.join(work, 'empty-bucket'), '--node', NODE]);

  catCopy(backlog.segments, backlog.bytes); // warm the page cache for everyone alike
  const cat = catCopy(backlog.segments, backlog.bytes);
  const toDir = await drain('directory', ledger, path.join(work, 'bucket'), [], expect);
  fs.rmSync(path.join(work, 'bucket'), { recursive: true, force: true });
  const gcs = await startGcsChild(path.join(work, 'gcs'), 'bench');
  let toGcs: Drain;
  try {
    toGcs = await drain('GCS test server', ledger, 'gs://bench/fleet', ['--endpoint', gcs.url], expect);
  } finally {
    await gcs.stop();
    fs.rmSync(path.join(work, 'gcs'), { recursive: true, force: true });
  }
  const catMBs = cat.bytes / 1024 / 1024 / (cat.ms / 1000);
  const catSyncMBs = cat.bytes / 1024 / 1024 / ((cat.ms + cat.fsyncMs) / 1000);
  const rate = (d: Drain) => d.bytes / 1024 / 1024 / (d.usage.wallMs / 1000);

  t = performance.now();
  const live = await latencyAndIdle();
  const liveSeconds = (performance.now() - t) / 1000;

  const p50 = percentile(live.latencies, 0.5);
  const p99 = percentile(live.latencies, 0.99);
  console.log(`\nShipper, ${mib(backlog.bytes)} MiB backlog (${int(backlog.entries)} entries); ${cli.note}; ${machineLine()}\n`);
  console.log(
    table(
      ['run', 'wall s', 'MiB/s', 'vs cat', 'vs cat + fsync', 'peak RSS MiB', 'CPU s (user+sys)'],
      [
        ['raw limit: `cat` segments > file (same disk, page cache)', secs(cat.ms), catMBs.toFixed(1), '1.00x', '-', '-', '-'],
        ['raw limit, durable: the same + one fsync', secs(cat.ms + cat.fsyncMs), catSyncMBs.toFixed(1), '-', '1.00x', '-', '-'],
        ...[toDir, toGcs].map((d) => [
          `ship --once → ${d.name}`,
          secs(d.usage.wallMs),
          rate(d).toFixed(1),
          `${(rate(d) / catMBs).toFixed(2)}x`,
          `${(rate(d) / catSyncMBs).toFixed(2)}x`,
          mib(d.usage.maxRssBytes),
          secs(d.usage.cpuUserMs + d.usage.cpuSystemMs),
        ]),
        ['ship --once, empty ledger (fixed cost: start-up)', secs(empty.wallMs), '-', '-', '-', mib(empty.maxRssBytes), secs(empty.cpuUserMs + empty.cpuSystemMs)],
      ],
    ),
  );
  for (const d of [toDir, toGcs]) console.log(`\nship → ${d.name}, memory ${memoryBreakdown(d.usage.atPeak)}`);
  console.log(`\nLive: shipper daemon (default batching) + writer at ${RATE}/s for ${LATENCY_S} s: ${int(live.latencies.length)}/${int(live.expected)} entries in ${live.objects} objects (${liveSeconds.toFixed(0)} s incl. idle phase)\n`);
  console.log(
    table(
      ['measure', 'value'],
      [
        ['emit → object p50', `${p50.toFixed(0)} ms`],
        ['emit → object p90', `${percentile(live.latencies, 0.9).toFixed(0)} ms`],
        ['emit → object p99', `${p99.toFixed(0)} ms`],
        ['emit → object max', `${(live.latencies.at(-1) ?? NaN).toFixed(0)} ms`],
        ['daemon peak RSS (during the steady load)', `${mib(live.peakRssBytes)} MiB`],
        [`daemon idle CPU (no writes, over ${IDLE_S} s)`, `${live.idleCpuMsPerS.toFixed(1)} ms/s = ${(live.idleCpuMsPerS / 10).toFixed(2)} % of a core`],
        ['daemon RSS when idle', `${mib(live.idleRssBytes)} MiB`],
      ],
    ),
  );
  const peakDrain = Math.max(toDir.usage.maxRssBytes, toGcs.usage.maxRssBytes);
  const targets: Target[] = [
    { what: 'ship → directory / cat', value: rate(toDir) / catMBs, target: '>= 0.5x', met: rate(toDir) / catMBs >= 0.5 },
    { what: 'ship → GCS test server / cat', value: rate(toGcs) / catMBs, target: '>= 0.5x', met: rate(toGcs) / catMBs >= 0.5 },
    { what: 'ship → directory / (cat + fsync)', value: rate(toDir) / catSyncMBs, target: '>= 0.5x', met: rate(toDir) / catSyncMBs >= 0.5 },
    { what: 'ship → GCS test server / (cat + fsync)', value: rate(toGcs) / catSyncMBs, target: '>= 0.5x', met: rate(toGcs) / catSyncMBs >= 0.5 },
    { what: 'peak RSS while draining', value: peakDrain, shown: `${mib(peakDrain)} MiB`, target: '< 150 MiB', met: peakDrain < 150 * 1024 * 1024 },
    { what: 'emit → object p99', value: p99, shown: `${(p99 / 1000).toFixed(2)} s`, target: '< 2 s', met: p99 < 2000 },
    { what: 'idle CPU', value: live.idleCpuMsPerS, shown: `${(live.idleCpuMsPerS / 10).toFixed(2)} %`, target: 'none set; report', met: undefined },
  ];
  console.log('\n' + targetLines(targets));
  if (PROFILE_DIR) console.log(`\nCPU profiles: ${PROFILE_DIR} (summarise: node --import tsx bench/support/cpuprofile-summary.ts ${PROFILE_DIR}/*.cpuprofile)`);
} finally {
  if (values.keep) console.log(`kept ${work}`);
  else fs.rmSync(work, { recursive: true, force: true });
}
