/**
 * THE crash test: writers keep emitting while the shipper process is SIGKILLed at random points
 * (during start-up, mid-upload, between an upload and its position save, mid-rotation) and
 * restarted, many times. Afterwards one `--once` drains, and the bucket must hold every ledger line
 * exactly once: no duplicate id, no missing id, and the byte ranges tile every segment.
 */
import type { ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LocalDirDestination } from 'metering-ledger/sink';
import { checkExactlyOnce, shippedEntries, shippedObjects } from './support/shipped.js';
import { spawnCli, spawnTs, waitExit } from './support/spawn.js';
import { tempDir } from './support/tmp.js';

const cleanups: (() => void)[] = [];
afterEach(() => cleanups.splice(0).forEach((c) => c()));

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface CrashRunOptions {
  ledger: string;
  dest: string;
  extraArgs?: string[];
  writers: number;
  entriesPerWriter: number;
  ratePerWriter: number;
  kills: number;
  env?: NodeJS.ProcessEnv;
}

/** Runs writers and a repeatedly killed shipper; resolves with every id the writers reported writing. */
export async function runCrashScenario(o: CrashRunOptions): Promise<{ ids: string[]; killedAt: number[] }> {
  const writers = Array.from({ length: o.writers }, () =>
    waitExit(spawnTs('test/support/ledger-writer.ts', [o.ledger, String(o.entriesPerWriter), String(o.ratePerWriter), '100000', 'node-a'], { env: { ...process.env, PRINT_IDS: '1' } })),
  );
  let writersDone = false;
  const all = Promise.all(writers).then((r) => {
    writersDone = true;
    return r;
  });
  const args = ['ship', '--ledger-dir', o.ledger, '--dest', o.dest, '--node', 'node-a', '--batch-bytes', '16KiB', '--batch-ms', '30', '--rescan-ms', '100', '--progress-ms', '300', '--seal-quiet-ms', '300', '--retry-base-ms', '20', '--retry-cap-ms', '200', ...(o.extraArgs ?? [])];
  const killedAt: number[] = [];
  for (let i = 0; i < o.kills; i++) {
    const child: ChildProcess = spawnCli(args, { env: { ...process.env, METERING_LOG_LEVEL: 'warn', ...o.env } });
    const exited = waitExit(child);
    const wait = 150 + Math.floor(Math.random() * 1600);
    killedAt.push(wait);
    await sleep(wait);
    child.kill('SIGKILL');
    const r = await exited;
    // Killed, or (rarely) it had already failed: a failure is a bug worth seeing.
    if (r.signal !== 'SIGKILL') throw new Error(`shipper exited by itself (code ${r.code}): ${r.stderr}`);
  }
  const results = await all;
  expect(writersDone).toBe(true);
  const ids: string[] = [];
  for (const r of results) {
    expect(r.code, r.stderr).toBe(0);
    ids.push(...r.stdout.split('\n').filter(Boolean));
  }
  return { ids, killedAt };
}

describe('shipper crash safety', () => {
  it('SIGKILLed 15 times while writers emit: every line lands exactly once', async () => {
    const t = tempDir('shipper-crash');
    cleanups.push(t.cleanup);
    const ledger = path.join(t.dir, 'ledger');
    const bucket = path.join(t.dir, 'bucket');
    const { ids, killedAt } = await runCrashScenario({ ledger, dest: bucket, writers: 3, entriesPerWriter: 5000, ratePerWriter: 300, kills: 15 });
    const dest = new LocalDirDestination(bucket);
    const before = await shippedObjects(dest);
    // The killed shippers did real work (otherwise this test would prove nothing).
    expect(before.length).toBeGreaterThan(20);

    const final = await waitExit(spawnCli(['ship', '--once', '--ledger-dir', ledger, '--dest', bucket, '--node', 'node-a', '--seal-quiet-ms', '0']));
    expect(final.code, final.stderr).toBe(0);

    const objects = await shippedObjects(dest);
    const problems = checkExactlyOnce(ledger, objects, { requireComplete: true });
    expect(problems, `kills after ms: ${killedAt.join(',')}`).toEqual([]);
    const shipped = shippedEntries(objects).map((e) => e.id);
    expect(new Set(shipped).size, 'duplicate ids in the bucket').toBe(shipped.length);
    expect(ids.length).toBe(15000);
    expect([...shipped].sort()).toEqual([...ids].sort());
  });
});
