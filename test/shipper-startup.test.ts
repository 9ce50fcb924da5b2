/**
 * Starting up in an imperfect directory: a node agent started by systemd before the manager created
 * the ledger directory waits for it (one warning) instead of exiting; temp files a kill -9 left in
 * the state directory and in the local bucket are removed on start.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FileRecorder } from 'metering-ledger';
import { LocalDirDestination } from 'metering-ledger/sink';
import { vmStart } from './support/entries.js';
import { shippedEntries, shippedObjects } from './support/shipped.js';
import { spawnCli, spawnTs, waitExit } from './support/spawn.js';
import { tempDir } from './support/tmp.js';
import { pollUntil } from './support/until.js';

const cleanups: (() => void)[] = [];
afterEach(() => cleanups.splice(0).forEach((c) => c()));

/** The pid of a process that has exited (what a kill -9 leaves in temp-file names). */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
  return Number(r.stdout.toString());
}

describe('shipper start-up', () => {
  it('the daemon waits for a ledger directory that does not exist yet (warns once), then ships it', async () => {
    const t = tempDir('wait-dir');
    cleanups.push(t.cleanup);
    const ledger = path.join(t.dir, 'not-yet', 'ledger');
    const bucket = path.join(t.dir, 'bucket');
    const child = spawnCli(['ship', '--ledger-dir', ledger, '--dest', bucket, '--node', 'node-a', '--rescan-ms', '50', '--batch-ms', '0']);
    cleanups.push(() => child.kill('SIGKILL'));
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = waitExit(child);
    let exitedEarly = false;
    void exited.then(() => (exitedEarly = true));
    await pollUntil('the waiting warning', () => exitedEarly || stderr.includes('does not exist yet'), 60_000, 20);
    expect(exitedEarly, stderr).toBe(false);
    // --once may still fail fast on the same directory.
    const once = await waitExit(spawnCli(['ship', '--once', '--ledger-dir', ledger, '--dest', bucket, '--node', 'node-a']));
    expect(once.code).toBe(1);
    expect(once.stderr).toContain('does not exist');

    const rec = new FileRecorder({ dir: ledger, node: 'node-a' });
    const ids = Array.from({ length: 30 }, (_, i) => rec.emit(vmStart(`late-${i}`))!);
    await rec.close();
    const dest = new LocalDirDestination(bucket);
    await pollUntil('the entries to ship', async () => exitedEarly || shippedEntries(await shippedObjects(dest)).length === ids.length, 60_000, 50);
    expect(exitedEarly, stderr).toBe(false);
    expect(shippedEntries(await shippedObjects(dest)).map((e) => e.id)).toEqual(ids);
    child.kill('SIGTERM');
    const r = await exited;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr.split('does not exist yet').length - 1).toBe(1);
  });

  it('removes temp files a kill -9 left in the state directory and the local bucket', async () => {
    const t = tempDir('stale-tmp');
    cleanups.push(t.cleanup);
    const ledger = path.join(t.dir, 'ledger');
    const bucket = path.join(t.dir, 'bucket');
    const w = await waitExit(spawnTs('test/support/ledger-writer.ts', [ledger, '20', '0']));
    expect(w.code, w.stderr).toBe(0);
    let r = await waitExit(spawnCli(['ship', '--once', '--ledger-dir', ledger, '--dest', bucket, '--node', 'node-a']));
    expect(r.code, r.stderr).toBe(0);
    const dead = deadPid();
    const state = path.join(ledger, '.shipper');
    const leftovers = [path.join(state, `.positions.json.${dead}.0a1b2c3d.tmp`), path.join(state, `.status.json.${dead}.deadbeef.tmp`), path.join(bucket, '.tmp', `${dead}-0123456789ab`)];
    for (const f of leftovers) fs.writeFileSync(f, 'half written');
    const old = new Date(Date.now() - 2 * 3_600_000);
    fs.utimesSync(leftovers[2]!, old, old);
    // A temp file of a live process is not litter (it may be writing it right now).
    const live = path.join(state, `.positions.json.${process.pid}.feedf00d.tmp`);
    fs.writeFileSync(live, 'in progress');
    const w2 = await waitExit(spawnTs('test/support/ledger-writer.ts', [ledger, '5', '0']));
    expect(w2.code, w2.stderr).toBe(0);
    r = await waitExit(spawnCli(['ship', '--once', '--ledger-dir', ledger, '--dest', bucket, '--node', 'node-a']));
    expect(r.code, r.stderr).toBe(0);
    for (const f of leftovers) expect(fs.existsSync(f), f).toBe(false);
    expect(fs.existsSync(live)).toBe(true);
  });
});
