/**
 * Consumer benchmark: a fleet of VMs over several days, shipped as ndjson.gz objects into a local
 * bucket, rolled up in one run and then in daily increments. Prints time, entries/s, state size and
 * peak RSS. Usage: node --import tsx bench/consumer-rollup.ts [vms=2000] [days=3]
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';
import { serializeEntry, ulid, type LedgerEntry } from 'metering-ledger';
import { LocalDirDestination, nodeProgressName, objectName } from 'metering-ledger/sink';
import { runRollup } from '../test/reference/run-rollup.js';

const VMS = Number(process.argv[2] ?? 2000);
const DAYS = Number(process.argv[3] ?? 3);
const NODES = 10;
const HOUR = 3_600_000;
const T0 = Date.UTC(2026, 10, 1);
const GiB = 1024 ** 3;

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'consumer-bench-'));
const bucketDir = path.join(root, 'bucket');
const dest = new LocalDirDestination(bucketDir);

// Per node, per day: one object. Each VM: start, a baseline every 6h, and a stop/start every ~day.
const byNodeDay = new Map<string, LedgerEntry[]>();
let seqs = new Map<string, number>();
let entries = 0;
for (let v = 0; v < VMS; v++) {
  const node = `node-${v % NODES}`;
  const writer = `w-${node}`;
  const emit = (kind: LedgerEntry['kind'], t: number): void => {
    const seq = (seqs.get(writer) ?? 0) + 1;
    seqs.set(writer, seq);
    const e: LedgerEntry = { v: 1, id: ulid(t), node, writer, seq, kind, vm_id: `vm-${v}`, reason: kind.endsWith('stop') ? 'stop-user' : kind.endsWith('running') ? 'baseline' : 'boot', hypervisor: 'cloud-hypervisor', shape: { cpu: 1 + (v % 8), mem_bytes: (1 + (v % 8)) * 2 * GiB, storage_bytes: 20 * GiB }, emitted_at: new Date(t).toISOString() };
    const key = `${node}/${Math.floor((t - T0) / (24 * HOUR))}`;
    (byNodeDay.get(key) ?? byNodeDay.set(key, []).get(key)!).push(e);
    entries++;
  };
  const offset = (v * 7919) % (6 * HOUR);
  emit('vm.compute.start', T0 + offset);
  emit('vm.storage.start', T0 + offset);
  for (let t = T0 + offset + 6 * HOUR; t < T0 + DAYS * 24 * HOUR; t += 6 * HOUR) {
    if ((t - T0) % (24 * HOUR) < 6 * HOUR && v % 3 === 0) {
      emit('vm.compute.stop', t);
      emit('vm.compute.start', t + 10 * 60_000);
    } else emit('vm.compute.running', t);
  }
}
seqs = new Map();

async function upload(day: number): Promise<void> {
  for (let n = 0; n < NODES; n++) {
    const node = `node-${n}`;
    const list = (byNodeDay.get(`${node}/${day}`) ?? []).sort((a, b) => (a.emitted_at < b.emitted_at ? -1 : 1));
    if (!list.length) continue;
    const body = Buffer.from(list.map((e) => serializeEntry(e) + '\n').join(''));
    const seg = `ledger-${new Date(T0 + day * 24 * HOUR).toISOString().slice(0, 10).replaceAll('-', '')}T000000000Z-bench${String(n).padStart(3, '0')}.jsonl`;
    await dest.putIfAbsent(objectName('', 'ledger', node, seg, 0, body.length, true), gzipSync(body), { contentEncoding: 'gzip' });
    const through = new Date(T0 + (day + 1) * 24 * HOUR).toISOString();
    await dest.put(nodeProgressName('', node), Buffer.from(JSON.stringify({ v: 1, node, reported_at: through, complete_through: through, backlog_bytes: 0, writers: {} })));
  }
}

const mb = (n: number): string => `${(n / 1024 / 1024).toFixed(1)} MiB`;
let peak = 0;
const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);

// Incremental: one run per day of data.
let t = performance.now();
for (let d = 0; d < DAYS; d++) {
  await upload(d);
  const r = await runRollup({ source: bucketDir, out: path.join(root, 'out-inc'), now: T0 + (d + 1) * 24 * HOUR });
  console.log(`day ${d + 1}: read ${r.run.entries_read} entries, ${r.intervals.length} intervals, ${r.hourly.length} hourly rows, watermark ${r.report.watermark}`);
}
const incMs = performance.now() - t;
// One run over everything.
t = performance.now();
const one = await runRollup({ source: bucketDir, out: path.join(root, 'out-one'), now: T0 + DAYS * 24 * HOUR });
const oneMs = performance.now() - t;
clearInterval(sampler);
console.log(`${VMS} VMs, ${NODES} nodes, ${DAYS} days: ${entries} entries, ${one.intervals.length} intervals, ${one.hourly.length} hourly rows`);
console.log(`one run: ${(oneMs / 1000).toFixed(2)} s (${Math.round(entries / (oneMs / 1000))} entries/s, ${Math.round(one.hourly.length / (oneMs / 1000))} hourly rows/s); ${DAYS} daily runs: ${(incMs / 1000).toFixed(2)} s total`);
console.log(`state: ${mb(fs.statSync(path.join(root, 'out-one', 'state.json')).size)}, hourly.ndjson: ${mb(fs.statSync(path.join(root, 'out-one', 'hourly.ndjson')).size)}, peak RSS ${mb(peak)}`);
fs.rmSync(root, { recursive: true, force: true });
