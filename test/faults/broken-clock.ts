/**
 * A node with a broken clock: its VMs start "in the year 2000" (the earliest time the wire format
 * accepts, e.g. an RTC reset to its epoch) and never stop. The recorder accepts the entries, the
 * shipper ships them, and the consumer, run as a process with a bounded heap, must neither crash
 * nor let its work grow with how far in the past the timestamp lies, and must report every such
 * entry (read, listed as clock skew) rather than drop it silently. A control run with the same
 * entries stamped with a correct clock shows the harness and heap are otherwise sufficient.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FileRecorder, KINDS, REASONS } from 'metering-ledger';
import { spawnCli, waitExit } from '../support/spawn.js';
import { drainOnce, removeRoot, rssBytes, tempRoot, type FaultResult } from './support.js';

export interface BrokenClockParams {
  /** VMs started with the broken clock. */
  vms: number;
  /** --max-old-space-size of the consumer process, MiB. */
  heapMb: number;
}

async function bucketWith(root: string, label: string, vms: number, emittedAt: string): Promise<string> {
  const ledger = path.join(root, `${label}-ledger`);
  const bucket = path.join(root, `${label}-bucket`);
  const rec = new FileRecorder({ dir: ledger, node: 'node-a' });
  for (let i = 0; i < vms; i++) {
    rec.emit({ kind: KINDS.VM_COMPUTE_START, reason: REASONS.BOOT, vm_id: `vm-${i}`, shape: { cpu: 2, mem_bytes: 4 * 1024 ** 3, storage_bytes: 0 }, emitted_at: emittedAt });
  }
  await rec.close();
  const r = await drainOnce(ledger, bucket);
  if (r.code !== 0) throw new Error(`ship --once exited ${r.code}: ${r.stderr}`);
  return bucket;
}

interface RollupRun {
  code: number | null;
  signal: string | null;
  stderr: string;
  peakMb: number;
  rows?: number;
  entriesRead?: number;
  skewed?: number;
}

async function rollup(bucket: string, out: string, heapMb: number): Promise<RollupRun> {
  const child = spawnCli(['rollup', '--source', bucket, '--out', out], { env: { ...process.env, METERING_LOG_LEVEL: 'warn', NODE_OPTIONS: `--max-old-space-size=${heapMb}` } });
  let peak = 0;
  const t = setInterval(() => (peak = Math.max(peak, rssBytes(child.pid!))), 50);
  const r = await waitExit(child);
  clearInterval(t);
  const report = path.join(out, 'report.json');
  const rep = r.code === 0 && fs.existsSync(report) ? (JSON.parse(fs.readFileSync(report, 'utf8')) as { hourly_rows: { total: number }; entries_read: number; clock_skew_entries?: { count: number } }) : undefined;
  return { code: r.code, signal: r.signal, stderr: r.stderr, peakMb: Math.round(peak / 1024 / 1024), rows: rep?.hourly_rows.total, entriesRead: rep?.entries_read, skewed: rep?.clock_skew_entries?.count };
}

export async function run(p: BrokenClockParams): Promise<FaultResult> {
  const root = tempRoot('clock');
  const violations: string[] = [];
  try {
    // Control: the same VMs started two hours ago (so there are final hourly rows to compute).
    const recent = new Date(Math.floor(Date.now() / 3_600_000) * 3_600_000 - 2 * 3_600_000).toISOString();
    const control = await rollup(await bucketWith(root, 'control', p.vms, recent), path.join(root, 'control-out'), p.heapMb);
    if (control.code !== 0) violations.push(`control run (today's clock) failed too (exit ${control.code}): the harness is wrong`);
    const broken = await rollup(await bucketWith(root, 'broken', p.vms, '2000-01-01T00:00:00.000Z'), path.join(root, 'broken-out'), p.heapMb);
    if (broken.code !== 0) {
      const why = /heap out of memory|Allocation failed/.test(broken.stderr) ? 'JavaScript heap out of memory' : broken.stderr.trim().split('\n').at(-1);
      violations.push(
        `${p.vms} VMs started by a clock reset to 2000-01-01 crash the consumer (exit ${broken.code}/${broken.signal}: ${why}) under a ${p.heapMb} MiB heap that handles the same entries stamped two hours ago`,
      );
    }
    // Not billed must not mean silently dropped: every such entry is read and reported.
    if (broken.code === 0 && broken.entriesRead !== p.vms) violations.push(`the consumer read ${broken.entriesRead} of ${p.vms} broken-clock entries`);
    if (broken.code === 0 && broken.skewed !== p.vms) violations.push(`the report lists ${broken.skewed ?? 'no'} clock-skew entries, expected ${p.vms}`);
    if (control.code === 0 && (control.skewed ?? 0) !== 0) violations.push(`${control.skewed} entries of a correct clock reported as clock skew`);
    return {
      scenario: 'broken clock (far past)',
      runs: 2,
      entries: p.vms * 2,
      lost: 0,
      duplicated: 0,
      maxRssMb: broken.peakMb,
      notes: [`control: ${control.rows ?? '?'} hourly rows, peak ${control.peakMb} MiB; broken clock: ${broken.code === 0 ? `${broken.rows} hourly rows, ${broken.skewed} entries reported as clock skew` : 'crashed'}, peak ${broken.peakMb} MiB (heap cap ${p.heapMb} MiB)`],
      violations,
    };
  } finally {
    removeRoot(root);
  }
}
