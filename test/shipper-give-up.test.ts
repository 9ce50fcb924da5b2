/**
 * `metering ship --once` must end: errors retrying cannot fix end it at once, others once the
 * destination has failed for --max-retry-time; either way exit 1 naming what was not shipped. The
 * daemon, by contrast, keeps retrying (covered by the outage tests).
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { spawnCli, spawnTs, waitExit, type Exited } from './support/spawn.js';
import { tempDir } from './support/tmp.js';

const cleanups: (() => void)[] = [];
afterEach(() => cleanups.splice(0).forEach((c) => c()));

/** A run that does not end by itself is killed after `boundMs` and fails the test. */
async function cli(args: string[], boundMs = 120_000): Promise<Exited> {
  const child = spawnCli(args, { env: { ...process.env, GOOGLE_APPLICATION_CREDENTIALS: '', STORAGE_EMULATOR_HOST: '' } });
  const timer = setTimeout(() => child.kill('SIGKILL'), boundMs);
  const r = await waitExit(child);
  clearTimeout(timer);
  if (r.signal === 'SIGKILL') throw new Error(`metering ${args.join(' ')} did not end within ${boundMs} ms:\n${r.stderr.slice(-2000)}`);
  return r;
}

async function ledgerWith(entries: number): Promise<{ root: string; ledger: string; segment: string; size: number }> {
  const t = tempDir('give-up');
  cleanups.push(t.cleanup);
  const ledger = path.join(t.dir, 'ledger');
  const r = await waitExit(spawnTs('test/support/ledger-writer.ts', [ledger, String(entries), '0']));
  expect(r.code, r.stderr).toBe(0);
  const segment = fs.readdirSync(ledger).find((n) => /^ledger-.*\.jsonl$/.test(n))!;
  return { root: t.dir, ledger, segment, size: fs.statSync(path.join(ledger, segment)).size };
}

/** A port on 127.0.0.1 where nothing listens (connections are refused). */
async function refusedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

describe('ship --once gives up instead of hanging', () => {
  it('a --dest that is a file: exit 1 at once (permanent), naming the segment and its unshipped bytes', async () => {
    const l = await ledgerWith(100);
    const file = path.join(l.root, 'not-a-dir');
    fs.writeFileSync(file, 'x');
    const r = await cli(['ship', '--once', '--ledger-dir', l.ledger, '--dest', file, '--node', 'node-a']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('not a directory');
    expect(r.stderr).toContain(`${l.segment}: ${l.size} bytes from offset 0`);
  });

  it('a refused endpoint: exit 1 after --max-retry-time, naming what was not shipped', async () => {
    const l = await ledgerWith(100);
    const port = await refusedPort();
    const r = await cli(['ship', '--once', '--ledger-dir', l.ledger, '--dest', 'gs://some-bucket/p', '--endpoint', `http://127.0.0.1:${port}`, '--node', 'node-a', '--max-retry-time', '2s', '--retry-base-ms', '50', '--retry-cap-ms', '200']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/still failing after \d+ s/);
    expect(r.stderr).toContain('ECONNREFUSED');
    expect(r.stderr).toContain(`${l.segment}: ${l.size} bytes from offset 0`);
    const status = JSON.parse(fs.readFileSync(path.join(l.ledger, '.shipper', 'status.json'), 'utf8')) as { backlog_bytes: number; last_error: { message: string } };
    expect(status.backlog_bytes).toBe(l.size);
    expect(status.last_error.message).toContain('ECONNREFUSED');
  });

  it('a 403 from the bucket: exit 1 at once with the fix in the message', async () => {
    const l = await ledgerWith(50);
    const { startGcsServer } = await import('./support/gcs-server.js');
    const server = await startGcsServer({ buckets: ['b403'] });
    cleanups.push(() => void server.stop());
    server.injectFault({ match: {}, times: Infinity, action: { type: 'status', status: 403 } });
    const r = await cli(['ship', '--once', '--ledger-dir', l.ledger, '--dest', 'gs://b403/p', '--endpoint', server.url, '--node', 'node-a']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('roles/storage.objectAdmin');
    expect(r.stderr).toContain(`${l.segment}: ${l.size} bytes from offset 0`);
  });
});
