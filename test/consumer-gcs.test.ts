/**
 * The consumer reads a GCS bucket (the test server, through the real @google-cloud/storage client)
 * exactly as it reads a local directory: same ledger shipped to both, same rollup out of both.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileRecorder, KINDS, REASONS } from 'metering-ledger';
import { runRollup } from 'metering-ledger/sink';
import { readOutputs } from './support/read-outputs.js';
import { startGcsServer, type GcsTestServer } from './support/gcs-server.js';
import { tempDir } from './support/tmp.js';

const run = promisify(execFile);
const BIN = path.resolve('bin/metering.js');
const GiB = 1024 ** 3;
const DAY = Date.UTC(2026, 10, 20);
const at = (h: number, m = 0): Date => new Date(DAY + h * 3_600_000 + m * 60_000);
const NOW = '2026-11-21T00:00:00Z';

let server: GcsTestServer;
let root: string;
let cleanup: () => void;

async function metering(args: string[]): Promise<{ stdout: string; stderr: string }> {
  return run(process.execPath, [BIN, ...args], { env: { ...process.env, METERING_LOG_LEVEL: 'warn' } });
}

beforeAll(async () => {
  server = await startGcsServer({ buckets: ['ledgers'] });
  ({ dir: root, cleanup } = tempDir('consumer-gcs'));
});
afterAll(async () => {
  await server?.stop();
  cleanup();
});

describe('consumer over GCS', () => {
  it('rollup from gs:// equals rollup from a local directory of the same ledger', async () => {
    const ledger = path.join(root, 'ledger');
    const rec = new FileRecorder({ dir: ledger, node: 'gcs-node', now: () => at(0) });
    for (let v = 0; v < 5; v++) {
      const shape = { cpu: v + 1, mem_bytes: (v + 1) * GiB, storage_bytes: 10 * GiB };
      rec.emit({ kind: KINDS.VM_COMPUTE_START, reason: REASONS.BOOT, vm_id: `vm-${v}`, shape, emitted_at: at(v, 13) });
      rec.emit({ kind: KINDS.VM_COMPUTE_RUNNING, reason: REASONS.BASELINE, vm_id: `vm-${v}`, shape, emitted_at: at(v + 2) });
      if (v % 2 === 0) rec.emit({ kind: KINDS.VM_COMPUTE_STOP, reason: REASONS.STOP_CRASH, vm_id: `vm-${v}`, shape, emitted_at: at(v + 3, 7) });
    }
    rec.close();
    await metering(['ship', '--once', '--ledger-dir', ledger, '--dest', 'gs://ledgers/fleet/eu', '--endpoint', server.url, '--node', 'gcs-node', '--gzip', '--no-progress-bar', '--state-dir', path.join(root, 's1')]);
    await metering(['ship', '--once', '--ledger-dir', ledger, '--dest', path.join(root, 'bucket'), '--node', 'gcs-node', '--no-progress-bar', '--state-dir', path.join(root, 's2')]);

    const { stdout } = await metering(['rollup', '--source', 'gs://ledgers/fleet/eu', '--endpoint', server.url, '--out', path.join(root, 'out-gcs'), '--now', NOW]);
    expect(stdout).toMatch(/read 1 new objects, 13 entries/);
    const local = (await runRollup({ source: path.join(root, 'bucket'), now: Date.parse(NOW), collectRows: true })).rows!;
    const gcs = readOutputs(path.join(root, 'out-gcs'));
    expect(local.intervals).toHaveLength(5);
    expect(gcs.intervals).toEqual(local.intervals);
    expect(gcs.hourly).toEqual(local.hourly);
  });
});
