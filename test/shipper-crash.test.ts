/**
 * THE crash test: writers keep emitting while the shipper process is SIGKILLed at random points
 * (during start-up, mid-upload, between an upload and its position save, mid-rotation) and
 * restarted, many times. Afterwards one `--once` drains, and the bucket must hold every ledger line
 * exactly once: no duplicate id, no missing id, and the byte ranges tile every segment.
 */
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LocalDirDestination } from 'metering-ledger/sink';
import { checkExactlyOnce, quarantineRecords, shippedEntries, shippedObjects } from './support/shipped.js';
import { runCrashScenario } from './support/crash-scenario.js';
import { spawnCli, waitExit } from './support/spawn.js';
import { tempDir } from './support/tmp.js';

const cleanups: (() => void)[] = [];
afterEach(() => cleanups.splice(0).forEach((c) => c()));

describe('shipper crash safety', () => {
  it('SIGKILLed 15 times while writers emit: every line lands exactly once', async () => {
    const t = tempDir('shipper-crash');
    cleanups.push(t.cleanup);
    const ledger = path.join(t.dir, 'ledger');
    const bucket = path.join(t.dir, 'bucket');
    // One writer also appends garbage: ranges then make a quarantine + ledger object pair, and a
    // kill between the two uploads must be repaired by re-cutting exactly that range.
    const { ids, killedAt } = await runCrashScenario({ ledger, dest: bucket, writers: 3, entriesPerWriter: 5000, ratePerWriter: 300, kills: 15, garbageEvery: 25 });
    const dest = new LocalDirDestination(bucket);
    const before = await shippedObjects(dest);
    // The killed shippers did real work (otherwise this test would prove nothing).
    expect(before.length).toBeGreaterThan(5);

    const final = await waitExit(spawnCli(['ship', '--once', '--ledger-dir', ledger, '--dest', bucket, '--node', 'node-a', '--seal-quiet-ms', '0']));
    expect(final.code, final.stderr).toBe(0);

    const objects = await shippedObjects(dest);
    const problems = checkExactlyOnce(ledger, objects, { requireComplete: true });
    expect(problems, `kills after ms: ${killedAt.join(',')}`).toEqual([]);
    const shipped = shippedEntries(objects).map((e) => e.id);
    expect(new Set(shipped).size, 'duplicate ids in the bucket').toBe(shipped.length);
    expect(ids.length).toBe(15000);
    expect([...shipped].sort()).toEqual([...ids].sort());
    // Every malformed line is in quarantine exactly once.
    const quarantined = quarantineRecords(objects).map((q) => Buffer.from(q.line_base64, 'base64').toString());
    expect(quarantined.length).toBe(5000 / 25);
    expect(new Set(quarantined).size).toBe(quarantined.length);
    expect(quarantined.every((l) => /^not json from \d+ #\d+$/.test(l))).toBe(true);
  });

  it('killed 8 times in the widest crash window (stored, not yet acknowledged): no duplicate, no gap', async () => {
    const t = tempDir('shipper-crash-ack');
    cleanups.push(t.cleanup);
    const ledger = path.join(t.dir, 'ledger');
    const bucket = path.join(t.dir, 'bucket');
    const { ids, killedAt } = await runCrashScenario({ ledger, dest: bucket, writers: 2, entriesPerWriter: 2400, ratePerWriter: 300, kills: 8, garbageEvery: 20, slowAck: true });
    const final = await waitExit(spawnCli(['ship', '--once', '--ledger-dir', ledger, '--dest', bucket, '--node', 'node-a', '--seal-quiet-ms', '0']));
    expect(final.code, final.stderr).toBe(0);
    const objects = await shippedObjects(new LocalDirDestination(bucket));
    expect(checkExactlyOnce(ledger, objects, { requireComplete: true }), `kills after ms: ${killedAt.join(',')}`).toEqual([]);
    const shipped = shippedEntries(objects).map((e) => e.id);
    expect(new Set(shipped).size).toBe(shipped.length);
    expect([...shipped].sort()).toEqual([...ids].sort());
    expect(quarantineRecords(objects).length).toBe(2400 / 20);
  });
});
