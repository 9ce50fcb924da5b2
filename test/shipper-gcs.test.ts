/**
 * The shipper against the GCS test server through the real @google-cloud/storage client, as child
 * processes: a crash test (SIGKILLs while writers emit) and an outage (503s, dropped connections,
 * answers lost after the upload was stored, refused connections) with memory measured.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ShipperStatus } from 'metering-ledger/sink';
import { GcsDestination } from 'metering-ledger/sink/gcs';
import { runCrashScenario } from './support/crash-scenario.js';
import { startGcsServer, type GcsTestServer } from './support/gcs-server.js';
import { checkExactlyOnce, shippedEntries, shippedObjects } from './support/shipped.js';
import { spawnCli, spawnTs, waitExit } from './support/spawn.js';
import { tempDir } from './support/tmp.js';
import { pollUntil, type Probe, sleep } from './support/until.js';

const cleanups: (() => void)[] = [];
afterEach(() => cleanups.splice(0).forEach((c) => c()));

let server: GcsTestServer;
beforeAll(async () => {
  server = await startGcsServer({ buckets: ['ledgers'] });
});
afterAll(async () => {
  await server?.stop();
});

const until = <T>(what: string, fn: Probe<T>, timeoutMs = 45_000): Promise<T> => pollUntil(what, fn, timeoutMs, 50);

function rssBytes(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0; // exited
  }
}

describe('shipper to GCS (test server, real client)', () => {
  it('SIGKILLed while writers emit: every line exactly once in the bucket', async () => {
    const t = tempDir('shipper-gcs-crash');
    cleanups.push(t.cleanup);
    const ledger = path.join(t.dir, 'ledger');
    const url = 'gs://ledgers/crash/eu';
    const { ids, killedAt } = await runCrashScenario({ ledger, dest: url, extraArgs: ['--endpoint', server.url], writers: 2, entriesPerWriter: 2500, ratePerWriter: 300, kills: 8 });
    const final = await waitExit(spawnCli(['ship', '--once', '--ledger-dir', ledger, '--dest', url, '--endpoint', server.url, '--node', 'node-a', '--seal-quiet-ms', '0']));
    expect(final.code, final.stderr).toBe(0);
    const dest = new GcsDestination('ledgers', { endpoint: server.url });
    const objects = await shippedObjects(dest, 'crash/eu');
    expect(checkExactlyOnce(ledger, objects, { requireComplete: true }), `kills after ms: ${killedAt.join(',')}`).toEqual([]);
    const shipped = shippedEntries(objects).map((e) => e.id);
    expect(new Set(shipped).size).toBe(shipped.length);
    expect(shipped.sort()).toEqual([...ids].sort());
    expect(server.getObject('ledgers', 'crash/eu/nodes/node-a.json')).toBeDefined();
  });

  it('a missing bucket: a clear error naming the bucket and the fix, retried slowly, shipped once it exists', async () => {
    const t = tempDir('shipper-gcs-nobucket');
    cleanups.push(t.cleanup);
    const ledger = path.join(t.dir, 'ledger');
    const w = await waitExit(spawnTs('test/support/ledger-writer.ts', [ledger, '300', '0', '1000000', 'node-a'], { env: { ...process.env, PRINT_IDS: '1' } }));
    expect(w.code, w.stderr).toBe(0);
    const shipper = spawnCli(['ship', '--ledger-dir', ledger, '--dest', 'gs://late-bucket/m', '--endpoint', server.url, '--node', 'node-a', '--permanent-retry-ms', '300', '--rescan-ms', '200']);
    let stderr = '';
    shipper.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = waitExit(shipper);
    try {
      await until('the missing-bucket error', () => /bucket late-bucket does not exist/.test(stderr) && /create it \(gcloud storage buckets create gs:\/\/late-bucket/.test(stderr));
      const status = await until('a status report with the error', () => {
        try {
          const s = JSON.parse(fs.readFileSync(path.join(ledger, '.shipper', 'status.json'), 'utf8')) as ShipperStatus;
          return s.last_error ? s : undefined;
        } catch {
          return undefined;
        }
      });
      expect(status.backlog_bytes).toBeGreaterThan(0);
      expect(status.last_error!.hint).toMatch(/gcloud storage buckets create gs:\/\/late-bucket/);
      server.createBucket('late-bucket');
      const dest = new GcsDestination('late-bucket', { endpoint: server.url });
      await until('the ledger to be shipped', async () => shippedEntries(await shippedObjects(dest, 'm')).length === 300);
      shipper.kill('SIGTERM');
      expect((await exited).code).toBe(0);
      expect(checkExactlyOnce(ledger, await shippedObjects(dest, 'm'), { requireComplete: true })).toEqual([]);
    } finally {
      if (shipper.exitCode === null) shipper.kill('SIGKILL');
    }
  });

  it('an outage of 503s, drops, lost answers and refused connections: nothing lost or duplicated, bounded memory, no restart', async () => {
    const t = tempDir('shipper-gcs-outage');
    cleanups.push(t.cleanup);
    const ledger = path.join(t.dir, 'ledger');
    fs.mkdirSync(ledger);
    const url = 'gs://ledgers/outage';
    const shipper = spawnCli(['ship', '--ledger-dir', ledger, '--dest', url, '--endpoint', server.url, '--node', 'node-a', '--batch-bytes', '1MiB', '--batch-ms', '50', '--rescan-ms', '200', '--progress-ms', '500', '--retry-base-ms', '50', '--retry-cap-ms', '500'], {
      env: { ...process.env, METERING_LOG_LEVEL: 'warn' },
    });
    const exited = waitExit(shipper);
    const statusOf = (): ShipperStatus | undefined => {
      try {
        return JSON.parse(fs.readFileSync(path.join(ledger, '.shipper', 'status.json'), 'utf8')) as ShipperStatus;
      } catch {
        return undefined;
      }
    };
    await until('the shipper to start', () => statusOf());
    const writer = waitExit(spawnTs('test/support/ledger-writer.ts', [ledger, '4000', '800', '2000000', 'node-a'], { env: { ...process.env, PRINT_IDS: '1' } }));
    await sleep(700);
    server.failNext(6, 503, { op: 'upload' });
    await sleep(500);
    server.dropNext(3, { op: 'upload' });
    await sleep(500);
    server.dropResponseNext(3, { op: 'upload' });
    await sleep(500);
    // A long backlog while nothing answers: ~20 MB written while connections are refused.
    await server.refuseConnections();
    const bulk = waitExit(spawnTs('test/support/ledger-writer.ts', [ledger, '80000', '0', '8000000', 'node-a'], { env: { ...process.env, PRINT_IDS: '1' } }));
    const baselineRss = rssBytes(shipper.pid!);
    let peakRss = 0;
    const sampler = setInterval(() => (peakRss = Math.max(peakRss, rssBytes(shipper.pid!))), 100);
    try {
      const bulkDone = await bulk;
      expect(bulkDone.code, bulkDone.stderr).toBe(0);
      await until('the backlog to show in status', () => (statusOf()?.backlog_bytes ?? 0) > 15_000_000);
      await server.acceptConnections();
      const w = await writer;
      expect(w.code, w.stderr).toBe(0);
      const total = 4000 + 80_000;
      await until('the backlog to drain', () => {
        const s = statusOf();
        return s && s.backlog_bytes === 0 && s.counters.ledger_lines === total;
      }, 90_000);
      const ids = [...w.stdout.split('\n'), ...bulkDone.stdout.split('\n')].filter(Boolean);
      expect(ids.length).toBe(total);
      clearInterval(sampler);
      shipper.kill('SIGTERM');
      const r = await exited;
      expect(r.code, r.stderr).toBe(0);
      const dest = new GcsDestination('ledgers', { endpoint: server.url });
      const objects = await shippedObjects(dest, 'outage');
      expect(checkExactlyOnce(ledger, objects, { requireComplete: true })).toEqual([]);
      const shipped = shippedEntries(objects).map((e) => e.id);
      expect(new Set(shipped).size).toBe(shipped.length);
      expect(shipped.sort()).toEqual(ids.sort());
      // The ledger is the buffer: a 20 MB backlog is streamed, not held.
      expect(peakRss).toBeGreaterThan(0);
      expect(peakRss).toBeLessThan(300 * 1024 * 1024);
      console.log(`outage test: shipper RSS ${(baselineRss / 1024 / 1024).toFixed(0)} MiB before, peak ${(peakRss / 1024 / 1024).toFixed(0)} MiB, server faults applied ${server.stats.faultsApplied}`);
    } finally {
      clearInterval(sampler);
      await server.acceptConnections();
      if (shipper.exitCode === null) shipper.kill('SIGKILL');
    }
  });
});
