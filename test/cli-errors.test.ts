/**
 * How the CLI reports errors, through real processes: a readable line and a hint on a terminal
 * (a pseudo-terminal from util-linux `script`), one pino JSON record otherwise; the lock conflict
 * without a duplicate `pid` key; `status` with the full gs://bucket/prefix; a missing optional
 * peer named with its install command.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OptionalPeerMissingError, type ShipperStatusReport } from 'metering-ledger/sink';
import { loadWithOptionalPeer } from '../sink/optional-peer.js';
import { cliError } from './support/cli-error.js';
import { startGcsServer, type GcsTestServer } from './support/gcs-server.js';
import { REPO_ROOT, spawnCli, waitExit } from './support/spawn.js';
import { tempDir } from './support/tmp.js';
import { pollUntil } from './support/until.js';

const run = promisify(execFile);
const BIN = path.join(REPO_ROOT, 'bin', 'metering.js');
const hasScript = fs.existsSync('/usr/bin/script');

/** Runs the CLI with a pseudo-terminal as stdout and stderr; returns what the terminal showed. */
async function onTerminal(args: string[]): Promise<{ code: number; screen: string }> {
  const cmd = [process.execPath, BIN, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  try {
    const { stdout } = await run('/usr/bin/script', ['-qec', cmd, '/dev/null'], { env: { ...process.env, METERING_LOG_LEVEL: 'info' } });
    return { code: 0, screen: stdout };
  } catch (err) {
    const e = err as { code: number; stdout: string };
    return { code: e.code, screen: e.stdout };
  }
}

let root: string;
let cleanup: () => void;
let aFile: string;
beforeAll(() => {
  ({ dir: root, cleanup } = tempDir('cli-errors'));
  aFile = path.join(root, 'a-file');
  fs.writeFileSync(aFile, 'x\n');
});
afterAll(() => cleanup());

describe('errors on a terminal', () => {
  it.skipIf(!hasScript)('the consumer: one readable line and a hint, no JSON, exit 2', async () => {
    const r = await onTerminal(['usage', '--source', aFile]);
    expect(r.code).toBe(2);
    expect(r.screen).toMatch(/^metering usage: --source .*a-file is a file, not a directory\r?\n\s+hint: point --source at the bucket directory/m);
    expect(r.screen).not.toContain('{"level"');
    const date = await onTerminal(['usage', '--source', root, '--from', '2026-02-30']);
    expect(date.code).toBe(2);
    expect(date.screen).toMatch(/^metering usage: --from: invalid time "2026-02-30": 2026-02 has no day 30\r?\n\s+hint: use ISO 8601 with a zone, e\.g\. 2026-11-24T10:00:00Z/m);
    const flag = await onTerminal(['rollup', '--source', root]);
    expect(flag.code).toBe(2);
    expect(flag.screen).toMatch(/^metering rollup: required option '--out <dir>' not specified\r?\n\s+hint: see `metering rollup --help`/m);
  });

  it.skipIf(!hasScript)('the shipper: the same style for its errors', async () => {
    const r = await onTerminal(['ship', '--once', '--ledger-dir', aFile, '--dest', path.join(root, 'bucket')]);
    expect(r.code).toBe(2);
    expect(r.screen).toMatch(/^metering ship: --ledger-dir .*a-file is a file, not a directory/m);
    expect(r.screen).toMatch(/hint: the ledger directory is where the recorder writes/);
    expect(r.screen).not.toContain('{"level"');
    const missing = await onTerminal(['ship', '--once', '--ledger-dir', path.join(root, 'nope'), '--dest', path.join(root, 'bucket')]);
    expect(missing.code).toBe(1);
    expect(missing.screen).toMatch(/^metering ship: shipper failed: ledger directory .*nope does not exist/m);
    expect(missing.screen).not.toContain('{"level"');
  });
});

describe('errors not on a terminal', () => {
  it('one pino JSON record with msg, hint and exit_code', async () => {
    const r = await waitExit(spawnCli(['rollup', '--source', aFile, '--out', path.join(root, 'out')]));
    expect(r.code).toBe(2);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    const rec = cliError(r.stderr);
    expect(rec).toMatchObject({ level: 50, name: 'metering-rollup', exit_code: 2 });
    expect(rec.msg).toMatch(/is a file, not a directory/);
    expect(fs.existsSync(path.join(root, 'out'))).toBe(false);
  });

  it('the lock conflict names the holder once: holderPid, no second pid key', async () => {
    const ledger = path.join(root, 'ledger-lock');
    fs.mkdirSync(ledger);
    const first = spawnCli(['ship', '--ledger-dir', ledger, '--dest', path.join(root, 'bucket-lock'), '--node', 'n1']);
    let err = '';
    first.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const firstExit = waitExit(first);
    try {
      await pollUntil('the first shipper started', () => err.includes('shipper: started') || undefined, 30_000, 50);
      const second = await waitExit(spawnCli(['ship', '--once', '--ledger-dir', ledger, '--dest', path.join(root, 'bucket-lock'), '--node', 'n1']));
      expect(second.code).toBe(3);
      const line = second.stderr.trim().split('\n').find((l) => l.includes('another shipper'))!;
      expect(line.match(/"pid":/g)).toHaveLength(1);
      const rec = JSON.parse(line) as { pid: number; holderPid: number; exit_code: number };
      expect(rec.holderPid).toBe(first.pid);
      expect(rec.pid).not.toBe(first.pid);
      expect(rec.exit_code).toBe(3);
    } finally {
      first.kill('SIGTERM');
      expect((await firstExit).code).toBe(0);
    }
  });
});

describe('status and gs://', () => {
  let server: GcsTestServer;
  beforeAll(async () => {
    server = await startGcsServer({ buckets: ['ledgers'] });
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('status keeps the full gs://bucket/prefix the shipper uploads to', async () => {
    const ledger = path.join(root, 'ledger-gs');
    fs.mkdirSync(ledger);
    fs.writeFileSync(path.join(ledger, 'ledger.jsonl'), '');
    const shipped = await waitExit(spawnCli(['ship', '--once', '--ledger-dir', ledger, '--dest', 'gs://ledgers/team-a/eu', '--endpoint', server.url, '--node', 'n1']));
    expect(shipped.code, shipped.stderr).toBe(0);
    const status = await waitExit(spawnCli(['status', '--ledger-dir', ledger, '--json']));
    expect(status.code, status.stderr).toBe(0);
    const report = JSON.parse(status.stdout) as ShipperStatusReport;
    expect(report.reported?.destination).toMatch(/^gs:\/\/ledgers\/team-a\/eu( |$)/);
    const text = await waitExit(spawnCli(['status', '--ledger-dir', ledger]));
    expect(text.stdout).toMatch(/^destination:\s+gs:\/\/ledgers\/team-a\/eu/m);
  });

  it('a missing optional peer is named with its install command', async () => {
    // This checkout installs every optional peer (dev dependencies); the CLI runs with a loader hook
    // that resolves @google-cloud/bigquery as if it were not installed, as a recorder-only install would.
    const hide = new URL('./support/hide-bigquery.mjs', import.meta.url).href;
    const r = await waitExit(
      spawnCli(['rollup', '--engine', 'bigquery', '--bq-dataset', 'proj.metering', '--bq-endpoint', 'http://127.0.0.1:9', '--source', 'gs://ledgers/x', '--out', path.join(root, 'bq-out')], {
        env: { ...process.env, NODE_OPTIONS: `--import=${hide}`, METERING_LOG_LEVEL: 'info' },
      }),
    );
    expect(r.code, r.stderr).toBe(2);
    const e = cliError(r.stderr);
    expect(e.msg).toBe('metering rollup --engine bigquery needs the optional package @google-cloud/bigquery, which is not installed');
    expect(e.hint).toBe('npm install @google-cloud/bigquery@^8');
    const err = await loadWithOptionalPeer('@google-cloud/bigquery', 'the BigQuery engine', () => Promise.reject(Object.assign(new Error("Cannot find package '@google-cloud/bigquery' imported from x"), { code: 'ERR_MODULE_NOT_FOUND' }))).catch((x: unknown) => x);
    expect(err).toBeInstanceOf(OptionalPeerMissingError);
    // Anything else that fails inside the load is not mistaken for a missing peer.
    const other = await loadWithOptionalPeer('@google-cloud/storage', 'x', () => Promise.reject(new Error('boom'))).catch((e: unknown) => e);
    expect((other as Error).message).toBe('boom');
  });
});
