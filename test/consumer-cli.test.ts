/**
 * The consumer end to end, as an operator runs it: the real recorder writes a ledger, the real
 * shipper (`metering ship --once`) uploads it, `metering rollup` and `metering usage` read it.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileRecorder, KINDS, REASONS } from 'metering-ledger';
import { lockState } from 'metering-ledger/sink';
import { readOutputs } from './support/read-outputs.js';
import { tempDir } from './support/tmp.js';
import { cliError } from './support/cli-error.js';

const run = promisify(execFile);
const BIN = path.resolve('bin/metering.js');
const GiB = 1024 ** 3;
const DAY = Date.UTC(2026, 10, 20);
const at = (h: number, m = 0): Date => new Date(DAY + h * 3_600_000 + m * 60_000);

async function metering(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [BIN, ...args], { env: { ...process.env, METERING_LOG_LEVEL: 'warn' } });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

let root: string;
let cleanup: () => void;
let bucket: string;
let out: string;
const NOW = '2026-11-21T00:00:00Z';

beforeAll(async () => {
  ({ dir: root, cleanup } = tempDir('consumer-cli'));
  bucket = path.join(root, 'bucket');
  out = path.join(root, 'out');
  const ledger = path.join(root, 'ledger');
  const rec = new FileRecorder({ dir: ledger, node: 'node-1', now: () => at(0) });
  const shape = { cpu: 2, mem_bytes: 4 * GiB, storage_bytes: 10 * GiB };
  // vm-a: compute 01:30-03:00 (1.5 h x 2 vCPU = 3 vCPU-h, 6 GiB-h memory); storage 01:30-04:30 (3 h x 10 GiB = 30 GiB-h).
  rec.emit({ kind: KINDS.VM_STORAGE_START, reason: REASONS.BOOT, vm_id: 'vm-a', hypervisor: 'cloud-hypervisor', shape, emitted_at: at(1, 30) });
  rec.emit({ kind: KINDS.VM_COMPUTE_START, reason: REASONS.BOOT, vm_id: 'vm-a', hypervisor: 'cloud-hypervisor', shape, emitted_at: at(1, 30) });
  rec.emit({ kind: KINDS.VM_COMPUTE_STOP, reason: REASONS.STOP_USER, vm_id: 'vm-a', hypervisor: 'cloud-hypervisor', shape, emitted_at: at(3) });
  rec.emit({ kind: KINDS.VM_COMPUTE_STOP, reason: REASONS.STOP_USER, vm_id: 'vm-a', hypervisor: 'cloud-hypervisor', shape, emitted_at: at(3, 1) });
  rec.emit({ kind: KINDS.VM_STORAGE_STOP, reason: REASONS.VM_RM, vm_id: 'vm-a', hypervisor: 'cloud-hypervisor', shape, emitted_at: at(4, 30) });
  // snap-1: 1 GiB for 20 minutes (1/3 GiB-h).
  rec.emit({ kind: KINDS.SNAP_STORAGE_START, reason: REASONS.CLONE, snapshot_id: 'snap-1', vm_id: 'vm-a', shape: { cpu: 0, mem_bytes: 0, storage_bytes: GiB }, emitted_at: at(2, 10) });
  rec.emit({ kind: KINDS.SNAP_STORAGE_STOP, reason: REASONS.SNAP_RM, snapshot_id: 'snap-1', vm_id: 'vm-a', shape: { cpu: 0, mem_bytes: 0, storage_bytes: GiB }, emitted_at: at(2, 30) });
  rec.close();
  const shipped = await metering(['ship', '--once', '--ledger-dir', ledger, '--dest', bucket, '--node', 'node-1', '--gzip', '--no-progress-bar']);
  expect(shipped.code, shipped.stderr).toBe(0);
});

afterAll(() => cleanup());

describe('metering rollup / usage CLI', () => {
  it('rollup writes intervals, hourly rows and a report from what the shipper uploaded', async () => {
    const res = await metering(['rollup', '--source', bucket, '--out', out, '--now', NOW, '--grace', '5m']);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toMatch(/read 1 new objects, 7 entries/);
    const { report, hourly } = readOutputs(out);
    expect(report.duplicate_stops.count).toBe(1);
    expect(report.seq_gaps.missing).toBe(0);
    // The engine's state database, private like every consumer file.
    expect(fs.statSync(path.join(out, 'state.duckdb')).mode & 0o777).toBe(0o600);
    expect(hourly.filter((r) => r.family === 'vm.compute').map((r) => [r.hour.slice(11, 13), r.ms])).toEqual([
      ['01', 1_800_000],
      ['02', 3_600_000],
    ]);
    const again = await metering(['rollup', '--source', bucket, '--out', out, '--now', NOW]);
    expect(again.stdout).toMatch(/read 0 new objects/);
  });

  it('usage prints exact vCPU-hours and GiB-hours and writes a self-contained HTML report', async () => {
    const html = path.join(root, 'usage.html');
    const res = await metering(['usage', '--source', bucket, '--state', path.join(out, 'state.duckdb'), '--now', NOW, '--html', html]);
    expect(res.code, res.stderr).toBe(0);
    const line = (key: string): string[] => res.stdout.split('\n').find((l) => l.startsWith(key + ' '))!.trim().split(/\s+/);
    expect(line('vm-a')).toEqual(['vm-a', 'vm', '3.000', '6.000', '30.000']);
    expect(line('snap-1')).toEqual(['snap-1', 'snapshot', '0.000', '0.000', '0.333']);
    expect(line('TOTAL')).toEqual(['TOTAL', '3.000', '6.000', '30.333']);
    const page = fs.readFileSync(html, 'utf8');
    expect(page).toMatch(/<svg/);
    expect(page).toMatch(/vm-a/);
    expect(page).not.toMatch(/(src|href)=/); // nothing loaded from elsewhere
    const byNode = await metering(['usage', '--source', bucket, '--now', NOW, '--by', 'node', '--from', '2026-11-20T02:00:00Z', '--to', '2026-11-20T03:00:00Z']);
    expect(byNode.stdout.split('\n').find((l) => l.startsWith('node-1'))!.trim().split(/\s+/)).toEqual(['node-1', '2.000', '4.000', '10.333']);
  });

  it('a second run while one holds the state lock is refused (exit 3) with a clear message', async () => {
    const release = await lockState(path.join(out, 'state.duckdb'));
    try {
      const res = await metering(['rollup', '--source', bucket, '--out', out, '--now', NOW]);
      expect(res.code).toBe(3);
      expect(cliError(res.stderr).msg).toMatch(/another metering rollup is running/);
    } finally {
      await release();
    }
  });

  it('bad flags get a clear error', async () => {
    const res = await metering(['rollup', '--source', bucket, '--out', out, '--grace', '5']);
    expect(res.code).toBe(2);
    expect(cliError(res.stderr).msg).toMatch(/invalid duration "5"/);
    const bad = await metering(['usage', '--source', bucket, '--by', 'planet']);
    expect(bad.code).toBe(2);
    expect(cliError(bad.stderr).msg).toMatch(/planet.*invalid|Allowed choices/i);
  });

  it('shows progress on a terminal and logs pino JSON otherwise', async () => {
    const fresh = path.join(root, 'out-progress');
    const plain = await run(process.execPath, [BIN, 'rollup', '--source', bucket, '--out', fresh, '--now', NOW], { env: { ...process.env, METERING_LOG_LEVEL: 'info' } });
    const log = plain.stderr.trim().split('\n').map((l) => JSON.parse(l) as { msg: string; objects_read?: number });
    expect(log.find((l) => l.msg === 'metering rollup: done')?.objects_read).toBe(1);
    if (!fs.existsSync('/usr/bin/script')) return; // util-linux `script` gives the child a pseudo-terminal
    const cmd = [process.execPath, BIN, 'rollup', '--source', bucket, '--out', path.join(root, 'out-tty'), '--now', NOW].map((a) => `'${a}'`).join(' ');
    const tty = await run('/usr/bin/script', ['-qec', cmd, '/dev/null'], { env: { ...process.env, METERING_LOG_LEVEL: 'info' } });
    expect(tty.stdout).toMatch(/reading objects 1\/1 \(100%\), 7 entries/);
    expect(tty.stdout).not.toMatch(/"level":30/);
  });
});
