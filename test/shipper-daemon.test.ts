import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LocalDirDestination, type NodeProgress, type ShipperStatus } from 'metering-ledger/sink';
import { checkExactlyOnce, shippedEntries, shippedObjects } from './support/shipped.js';
import { spawnCli, spawnTs, waitExit } from './support/spawn.js';
import { tempDir } from './support/tmp.js';
import { pollUntil, type Probe } from './support/until.js';

const cleanups: (() => void)[] = [];
afterEach(() => cleanups.splice(0).forEach((c) => c()));

const until = <T>(what: string, fn: Probe<T>, timeoutMs = 30_000): Promise<T> => pollUntil(what, fn, timeoutMs, 50);

function readStatus(ledger: string): ShipperStatus | undefined {
  try {
    return JSON.parse(fs.readFileSync(path.join(ledger, '.shipper', 'status.json'), 'utf8')) as ShipperStatus;
  } catch {
    return undefined;
  }
}

describe('metering ship (daemon)', () => {
  it('follows rotations while writers emit, refuses a second shipper, serves metrics, stops cleanly on SIGTERM', async () => {
    const t = tempDir('shipper-daemon');
    cleanups.push(t.cleanup);
    const ledger = path.join(t.dir, 'ledger');
    const bucket = path.join(t.dir, 'bucket');
    fs.mkdirSync(ledger);
    const shipper = spawnCli(['ship', '--ledger-dir', ledger, '--dest', bucket, '--node', 'node-a', '--batch-ms', '50', '--rescan-ms', '200', '--progress-ms', '300', '--seal-quiet-ms', '300', '--metrics-port', '0']);
    let stderr = '';
    shipper.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = waitExit(shipper);
    const metricsUrl = await until('the metrics endpoint', () => /"url":"(http:\/\/127\.0\.0\.1:\d+\/metrics)"/.exec(stderr)?.[1]);

    // Two writers, tiny segments: dozens of rotations while the shipper tails.
    const writers = [0, 1].map(() => waitExit(spawnTs('test/support/ledger-writer.ts', [ledger, '2000', '1000', '40000', 'node-a'], { env: { ...process.env, PRINT_IDS: '1' } })));

    // A second shipper on the same directory is refused with a clear message and exit code 3.
    const second = await waitExit(spawnCli(['ship', '--once', '--ledger-dir', ledger, '--dest', bucket, '--node', 'node-a']));
    expect(second.code).toBe(3);
    expect(second.stderr).toMatch(/another shipper is already running on .*only one shipper per ledger directory/);

    const ids = (await Promise.all(writers)).flatMap((r) => {
      expect(r.code, r.stderr).toBe(0);
      return r.stdout.split('\n').filter(Boolean);
    });
    expect(ids.length).toBe(4000);
    const segments = fs.readdirSync(ledger).filter((n) => n.startsWith('ledger-'));
    expect(segments.length).toBeGreaterThan(10);

    // Drained without a restart: the status file says so.
    await until('the backlog to drain', () => {
      const s = readStatus(ledger);
      return s && s.backlog_bytes === 0 && s.counters.ledger_lines === 4000;
    });
    const metrics = await (await fetch(metricsUrl)).text();
    // No `node` label: the scrape target already is the node.
    expect(metrics).toMatch(/^metering_shipper_backlog_bytes 0$/m);
    expect(metrics).toMatch(/^metering_shipper_ledger_lines_total 4000$/m);
    expect(metrics).toMatch(/^metering_shipper_last_success_timestamp_seconds \d+/m);

    // Idle, the node progress object is still rewritten every --progress-ms (silent-node detection).
    const progressOf = (): NodeProgress => JSON.parse(fs.readFileSync(path.join(bucket, 'nodes', 'node-a.json'), 'utf8')) as NodeProgress;
    const first = progressOf();
    expect(first.backlog_bytes).toBe(0);
    expect(Object.values(first.writers).map((w) => w.last_seq)).toEqual([2000, 2000]);
    await until('an idle progress report', () => progressOf().reported_at > first.reported_at);
    expect(progressOf().complete_through >= first.complete_through).toBe(true);

    const statusText = await waitExit(spawnCli(['status', '--ledger-dir', ledger]));
    expect(statusText.stdout).toMatch(/shipper:\s+running \(pid \d+\)/);
    expect(statusText.stdout).toMatch(/backlog:\s+0 B/);
    expect(statusText.stdout).toMatch(/last success:\s+\d{4}-/);

    shipper.kill('SIGTERM');
    const r = await exited;
    expect(r.code, stderr).toBe(0);
    expect(stderr).toContain('shipper: stopped');
    const after = await waitExit(spawnCli(['status', '--ledger-dir', ledger]));
    expect(after.stdout).toMatch(/shipper:\s+not running/);

    const objects = await shippedObjects(new LocalDirDestination(bucket));
    expect(checkExactlyOnce(ledger, objects, { requireComplete: true })).toEqual([]);
    expect(shippedEntries(objects).map((e) => e.id).sort()).toEqual(ids.sort());
    // Rotated segments were sealed: fully shipped and quiet.
    const positions = JSON.parse(fs.readFileSync(path.join(ledger, '.shipper', 'positions.json'), 'utf8')) as { segments: Record<string, { sealed: boolean }> };
    expect(Object.values(positions.segments).filter((p) => p.sealed).length).toBeGreaterThan(5);
    expect((fs.statSync(path.join(ledger, '.shipper', 'positions.json')).mode & 0o777).toString(8)).toBe('600');
    expect((fs.statSync(path.join(ledger, '.shipper')).mode & 0o777).toString(8)).toBe('700');
  });

  it('exits non-zero when its lock is taken away (another shipper could be running now)', async () => {
    const t = tempDir('shipper-lock-lost');
    cleanups.push(t.cleanup);
    const ledger = path.join(t.dir, 'ledger');
    fs.mkdirSync(ledger);
    const shipper = spawnCli(['ship', '--ledger-dir', ledger, '--dest', path.join(t.dir, 'bucket'), '--node', 'node-a']);
    let stderr = '';
    shipper.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = waitExit(shipper);
    await until('the shipper to start', () => stderr.includes('shipper: started'));
    fs.rmSync(path.join(ledger, '.shipper.lock'), { recursive: true });
    const r = await exited; // proper-lockfile notices at its next refresh (within 5 s)
    expect(r.code).toBe(1);
    expect(stderr).toMatch(/lost the shipper lock/);
  });
});
