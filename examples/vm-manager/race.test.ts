import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { FileRecorder, KINDS, listSegments, readLedger, type LedgerEntry } from 'metering-ledger';
import { VmManager } from './manager.js';
import { JsonFileStore } from './store.js';
import { SimulatedVmm } from './vmm.js';

const CLI = fileURLToPath(new URL('./cli.ts', import.meta.url));
const REPO = fileURLToPath(new URL('../..', import.meta.url));
const SNAPSHOTS = ['snap-1', 'snap-2', 'snap-3'];

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vm-race-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const argv = ['--import', 'tsx', CLI, '--store', path.join(dir, 'store.json'), '--ledger-dir', path.join(dir, 'ledger'), '--node', 'race-node', '--vmm', 'simulated', ...args];
  return new Promise((resolve) => {
    execFile(process.execPath, argv, { cwd: REPO }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

async function ledgerEntries(ledgerDir: string): Promise<LedgerEntry[]> {
  const out: LedgerEntry[] = [];
  for (const segment of listSegments(ledgerDir)) {
    for await (const r of readLedger(path.join(ledgerDir, segment))) {
      expect(r.type).toBe('entry');
      if (r.type === 'entry') out.push(r.entry);
    }
  }
  return out;
}

it('two processes racing to delete the same snapshot record exactly one stop', async () => {
  const ledgerDir = path.join(dir, 'ledger');
  const recorder = new FileRecorder({ dir: ledgerDir, node: 'race-node' });
  const m = new VmManager({ store: new JsonFileStore(path.join(dir, 'store.json')), recorder, vmm: new SimulatedVmm(path.join(dir, 'vmm-sim')) });
  await m.create({ id: 'vm-a', shape: { cpu: 2, mem_bytes: 2 ** 32, storage_bytes: 2 ** 34 }, hypervisor: 'cloud-hypervisor' });
  for (const id of SNAPSHOTS) await m.createSnapshot('vm-a', { id });
  await recorder.close();

  // Every snapshot gets two deleters at once: all six processes start together and contend for the lock.
  const results = await Promise.all(SNAPSHOTS.flatMap((id) => [cli(['snapshot', 'rm', id]), cli(['snapshot', 'rm', id])]));

  for (let i = 0; i < SNAPSHOTS.length; i++) {
    const pair = [results[2 * i]!, results[2 * i + 1]!];
    expect(pair.map((r) => r.code)).toEqual([0, 0]);
    const outputs = pair.map((r) => r.stdout.trim()).sort();
    expect(outputs).toEqual([`removed snapshot ${SNAPSHOTS[i]}`, `snapshot ${SNAPSHOTS[i]} is already gone; nothing recorded`]);
  }

  const entries = await ledgerEntries(ledgerDir);
  for (const id of SNAPSHOTS) {
    const stops = entries.filter((e) => e.kind === KINDS.SNAP_STORAGE_STOP && e.snapshot_id === id);
    expect(stops).toHaveLength(1);
    expect(stops[0]).toMatchObject({ reason: 'snap-rm', vm_id: 'vm-a', hypervisor: 'cloud-hypervisor', node: 'race-node' });
  }
  expect(m.list().snapshots).toEqual({});
});
