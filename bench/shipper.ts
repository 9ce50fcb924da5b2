/**
 * Shipper benchmark: `--once` throughput (MB/s) on a large ledger to a local directory (and to the
 * GCS test server with --gcs), and emit-to-object latency at a steady rate through the daemon.
 *
 *   npm run bench -- shipper [--mb 200] [--rate 1000] [--seconds 10] [--gcs]
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { FileRecorder, KINDS, REASONS, parseLedgerBuffer } from 'metering-ledger';

const { values } = parseArgs({
  options: { mb: { type: 'string', default: '200' }, rate: { type: 'string', default: '1000' }, seconds: { type: 'string', default: '10' }, gcs: { type: 'boolean', default: false } },
  allowPositionals: true,
});
const MB = Number(values.mb);
const RATE = Number(values.rate);
const SECONDS = Number(values.seconds);
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-shipper-'));
const repo = new URL('..', import.meta.url).pathname;

function run(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['bin/metering.js', ...args], { cwd: repo, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, METERING_LOG_LEVEL: 'warn' } });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

function buildLedger(dir: string, mb: number): number {
  const rec = new FileRecorder({ dir, node: 'bench' });
  let i = 0;
  const target = mb * 1024 * 1024;
  let bytes = 0;
  while (bytes < target) {
    for (let k = 0; k < 10_000; k++, i++) {
      rec.emit({ kind: i % 2 ? KINDS.VM_COMPUTE_STOP : KINDS.VM_COMPUTE_START, reason: i % 2 ? REASONS.STOP_USER : REASONS.BOOT, vm_id: `vm-${i >> 1}`, hypervisor: 'cloud-hypervisor', shape: { cpu: 2, mem_bytes: 4 * 1024 ** 3, storage_bytes: 20 * 1024 ** 3 } });
    }
    bytes = fs.readdirSync(dir).filter((n) => n.startsWith('ledger-')).reduce((s, n) => s + fs.statSync(path.join(dir, n)).size, 0);
  }
  void rec.close();
  return bytes;
}

async function throughput(label: string, ledger: string, bytes: number, dest: string, extra: string[]): Promise<void> {
  const t0 = process.hrtime.bigint();
  const r = await run(['ship', '--once', '--ledger-dir', ledger, '--dest', dest, '--node', 'bench', ...extra]);
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.code !== 0) throw new Error(`ship failed: ${r.stderr}`);
  console.log(`${label.padEnd(34)} ${(bytes / 1024 / 1024).toFixed(0)} MiB in ${secs.toFixed(2)} s = ${(bytes / 1024 / 1024 / secs).toFixed(1)} MiB/s (includes ~0.5 s process start)`);
}

function walk(dir: string, out: string[] = []): string[] {
  let entries: fs.Dirent[] = [];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return out;
  }
  for (const e of entries) {
    if (e.name.startsWith('.')) continue;
    const p = path.join(dir, e.name);
    if (e.isDirectory()) walk(p, out);
    else if (e.name.endsWith('.ndjson')) out.push(p);
  }
  return out;
}

async function latency(batchMs: number): Promise<void> {
  const ledger = path.join(work, `lat-${batchMs}`);
  const bucket = path.join(work, `lat-bucket-${batchMs}`);
  fs.mkdirSync(ledger);
  const shipper = spawn(process.execPath, ['bin/metering.js', 'ship', '--ledger-dir', ledger, '--dest', bucket, '--node', 'bench', '--batch-ms', String(batchMs)], { cwd: repo, stdio: 'ignore', env: { ...process.env, METERING_LOG_LEVEL: 'warn' } });
  await new Promise((r) => setTimeout(r, 1500));
  const writer = spawn(process.execPath, ['--import', 'tsx', 'test/support/ledger-writer.ts', ledger, String(RATE * SECONDS), String(RATE), String(64 * 1024 * 1024), 'bench'], { cwd: repo, stdio: 'ignore' });
  const seen = new Set<string>();
  const lat: number[] = [];
  const total = RATE * SECONDS;
  const deadline = Date.now() + SECONDS * 1000 + 15_000;
  while (lat.length < total && Date.now() < deadline) {
    for (const f of walk(bucket)) {
      if (seen.has(f)) continue;
      seen.add(f);
      const now = Date.now();
      for (const r of parseLedgerBuffer(fs.readFileSync(f))) if (r.type === 'entry') lat.push(now - Date.parse(r.entry.emitted_at));
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  writer.kill();
  shipper.kill('SIGTERM');
  lat.sort((a, b) => a - b);
  const q = (p: number): number => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] ?? NaN;
  console.log(`latency --batch-ms ${String(batchMs).padEnd(5)} ${RATE}/s for ${SECONDS}s: ${lat.length}/${total} entries, ${seen.size} objects; emit->object p50 ${q(0.5)} ms, p90 ${q(0.9)} ms, p99 ${q(0.99)} ms, max ${lat.at(-1)} ms`);
}

try {
  const ledger = path.join(work, 'big');
  console.log(`building a ~${MB} MiB ledger...`);
  const bytes = buildLedger(ledger, MB);
  await throughput('--once to a local dir', ledger, bytes, path.join(work, 'bucket-plain'), ['--state-dir', path.join(work, 'state-plain')]);
  await throughput('--once to a local dir, --gzip', ledger, bytes, path.join(work, 'bucket-gz'), ['--gzip', '--state-dir', path.join(work, 'state-gz')]);
  if (values.gcs) {
    const { startGcsServer } = await import('../test/support/gcs-server.js');
    const server = await startGcsServer({ buckets: ['bench'] });
    try {
      await throughput('--once to the GCS test server', ledger, bytes, 'gs://bench/x', ['--endpoint', server.url, '--state-dir', path.join(work, 'state-gcs')]);
    } finally {
      await server.stop();
    }
  }
  await latency(1000);
  await latency(100);
} finally {
  fs.rmSync(work, { recursive: true, force: true });
}
