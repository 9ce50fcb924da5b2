import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FileRecorder } from 'metering-ledger';
import { LocalDirDestination, PermanentDestinationError, shipOnce, startShipper } from 'metering-ledger/sink';
import { vmStart } from './support/entries.js';
import { FlakyDestination } from './support/flaky-destination.js';
import { checkExactlyOnce, shippedEntries, shippedObjects } from './support/shipped.js';
import { memoryLogger, tempDir } from './support/tmp.js';
import { pollUntil, type Probe, sleep } from './support/until.js';

const cleanups: (() => void)[] = [];
afterEach(() => cleanups.splice(0).forEach((c) => c()));

const until = <T>(what: string, fn: Probe<T>, timeoutMs = 20_000): Promise<T> => pollUntil(what, fn, timeoutMs, 25);

describe('shipper: destination outages', () => {
  it('rides out failures, lost responses and an outage while writers emit: nothing lost, nothing duplicated, no restart', async () => {
    const t = tempDir('shipper-outage');
    cleanups.push(t.cleanup);
    const ledger = path.join(t.dir, 'ledger');
    const flaky = new FlakyDestination(new LocalDirDestination(path.join(t.dir, 'bucket')));
    const { logger, records } = await memoryLogger();
    const rec = new FileRecorder({ dir: ledger, node: 'node-a', maxSegmentBytes: 30_000 });
    const ids: string[] = [];
    let n = 0;
    const emitSome = (k: number): void => {
      for (let i = 0; i < k; i++) ids.push(rec.emit(vmStart(`vm-${n++}`))!);
    };
    emitSome(50);
    const running = await startShipper({ ledgerDir: ledger, destination: flaky, node: 'node-a', logger, batchBytes: 8192, batchMs: 10, rescanMs: 50, progressMs: 100, sealQuietMs: 100, retry: { baseMs: 5, capMs: 50, permanentMs: 100 } });
    const writer = setInterval(() => emitSome(10), 10);
    try {
      await sleep(200);
      // Connection resets on some uploads.
      flaky.failNext(5, { ops: ['putIfAbsent'] });
      await sleep(200);
      // The response is lost after the object was stored: the retry must find it, not duplicate it.
      flaky.failNext(4, { ops: ['putIfAbsent'], mode: 'store-then-throw' });
      await sleep(300);
      // A hard outage: every call fails for a while; the ledger is the buffer.
      flaky.down = true;
      await sleep(1000);
      const during = running.status();
      expect(during.backlog_bytes).toBeGreaterThan(0);
      expect(during.last_error?.message).toMatch(/injected outage/);
      expect(Date.parse(during.oldest_unshipped_at!)).toBeLessThanOrEqual(Date.now());
      flaky.down = false;
      // Permission trouble: logged with its hint, retried slowly, then fixed.
      flaky.failNext(2, { ops: ['putIfAbsent'], error: () => new PermanentDestinationError('403 Forbidden on bucket test-bucket', 'grant roles/storage.objectCreator to the shipper account', 403) });
      await sleep(300);
    } finally {
      clearInterval(writer);
    }
    await rec.close();
    await until('the backlog to drain', () => {
      const s = running.status();
      return s.backlog_bytes === 0 && s.counters.ledger_lines === ids.length;
    });
    await running.stop();
    await running.done;

    expect(flaky.failed.putIfAbsent).toBeGreaterThanOrEqual(11);
    const objects = await shippedObjects(flaky.inner);
    expect(checkExactlyOnce(ledger, objects, { requireComplete: true })).toEqual([]);
    const shipped = shippedEntries(objects).map((e) => e.id);
    expect(shipped.sort()).toEqual([...ids].sort());
    // Each object name was created once; a lost response is resolved by "exists" + same checksum.
    expect(new Set(flaky.created).size).toBe(flaky.created.length);
    expect(records.some((r) => String(r.msg).includes('403 Forbidden on bucket test-bucket') && String(r.msg).includes('grant roles/storage.objectCreator'))).toBe(true);
    expect(running.status().counters.upload_errors).toBeGreaterThanOrEqual(11);
  });

  it('stop() during an outage returns without waiting for the destination; the next run ships everything once', async () => {
    const t = tempDir('shipper-outage-stop');
    cleanups.push(t.cleanup);
    const ledger = path.join(t.dir, 'ledger');
    const flaky = new FlakyDestination(new LocalDirDestination(path.join(t.dir, 'bucket')));
    const rec = new FileRecorder({ dir: ledger, node: 'node-a' });
    const ids = Array.from({ length: 100 }, (_, i) => rec.emit(vmStart(`vm-${i}`))!);
    await rec.close();
    flaky.down = true;
    const { logger } = await memoryLogger();
    const running = await startShipper({ ledgerDir: ledger, destination: flaky, node: 'node-a', logger, rescanMs: 50, retry: { baseMs: 1000, capMs: 30_000 } });
    await until('a failed attempt', () => flaky.failed.list + flaky.failed.putIfAbsent > 0);
    await running.stop();
    await running.done;
    flaky.down = false;
    await shipOnce({ ledgerDir: ledger, destination: flaky, node: 'node-a', logger });
    const objects = await shippedObjects(flaky.inner);
    expect(checkExactlyOnce(ledger, objects, { requireComplete: true })).toEqual([]);
    expect(shippedEntries(objects).map((e) => e.id)).toEqual(ids);
  });
});
