import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FileRecorder } from 'metering-ledger';
import { LocalDirDestination, shipOnce, startShipper, type Destination } from 'metering-ledger/sink';
import { vmStart } from './support/entries.js';
import { FlakyDestination } from './support/flaky-destination.js';
import { checkExactlyOnce, shippedEntries, shippedObjects } from './support/shipped.js';
import { memoryLogger, tempDir } from './support/tmp.js';
import { pollUntil, type Probe, sleep } from './support/until.js';

const cleanups: (() => void)[] = [];
afterEach(() => cleanups.splice(0).forEach((c) => c()));

const until = <T>(what: string, fn: Probe<T>, timeoutMs = 20_000): Promise<T> => pollUntil(what, fn, timeoutMs, 25);

function setup(): { ledger: string; bucket: string; dest: LocalDirDestination } {
  const t = tempDir('shipper-seg');
  cleanups.push(t.cleanup);
  const ledger = path.join(t.dir, 'ledger');
  const bucket = path.join(t.dir, 'bucket');
  return { ledger, bucket, dest: new LocalDirDestination(bucket) };
}

function emit(ledger: string, n: number, tag: string, maxSegmentBytes?: number): string[] {
  const rec = new FileRecorder({ dir: ledger, node: 'node-a', ...(maxSegmentBytes ? { maxSegmentBytes, checkIntervalMs: 0 } : {}) });
  const ids: string[] = [];
  for (let i = 0; i < n; i++) ids.push(rec.emit(vmStart(`${tag}-${i}`))!);
  void rec.close();
  return ids;
}

const segmentsOf = (ledger: string): string[] => fs.readdirSync(ledger).filter((n) => /^ledger-.*\.jsonl$/.test(n)).sort();

async function once(ledger: string, dest: Destination, extra: Partial<Parameters<typeof shipOnce>[0]> = {}): Promise<Record<string, unknown>[]> {
  const { logger, records } = await memoryLogger();
  await shipOnce({ ledgerDir: ledger, destination: dest, node: 'node-a', logger, batchBytes: 4096, ...extra });
  return records;
}

describe('shipper: segments that change underneath it', () => {
  it('a truncated segment is shipped again from its start under a new generation; nothing skipped', async () => {
    const { ledger, dest } = setup();
    emit(ledger, 50, 'old');
    await once(ledger, dest);
    const seg = segmentsOf(ledger)[0]!;
    // Truncated by hand, then written again: the new bytes must not hide behind the old position.
    fs.truncateSync(path.join(ledger, seg), 0);
    const fresh = emit(ledger, 20, 'new');
    const logs = await once(ledger, dest);
    expect(logs.some((l) => l.level === 50 && String(l.msg).includes('replaced or truncated'))).toBe(true);
    const objects = await shippedObjects(dest);
    const gen1 = objects.filter((o) => o.gen === 1);
    expect(gen1.length).toBeGreaterThan(0);
    expect(gen1[0]!.name).toMatch(/\.g1\.0000000000000000-/);
    expect(shippedEntries(gen1).map((e) => e.id)).toEqual(fresh);
    expect(checkExactlyOnce(ledger, objects, { requireComplete: true })).toEqual([]);
    // The old generation is still there, untouched (create-only: nothing was overwritten).
    expect(shippedEntries(objects.filter((o) => o.gen === 0)).length).toBe(50);
  });

  it('a segment replaced by a different file (new inode, longer) gets a new generation too', async () => {
    const { ledger, dest } = setup();
    emit(ledger, 30, 'a');
    await once(ledger, dest);
    const seg = segmentsOf(ledger)[0]!;
    const file = path.join(ledger, seg);
    // "Restored from a copy" of another node's content: same name, different bytes, bigger.
    const other = setup();
    emit(other.ledger, 60, 'b');
    const replacement = fs.readFileSync(path.join(other.ledger, segmentsOf(other.ledger)[0]!));
    fs.writeFileSync(file + '.tmp', replacement);
    fs.renameSync(file + '.tmp', file);
    const logs = await once(ledger, dest);
    expect(logs.some((l) => l.level === 50 && String(l.msg).includes('replaced'))).toBe(true);
    const objects = await shippedObjects(dest);
    expect(checkExactlyOnce(ledger, objects, { requireComplete: true })).toEqual([]);
    expect(shippedEntries(objects.filter((o) => o.gen === 1)).length).toBe(60);
  });

  it('a lost position store with a replaced segment: the destination objects are checked, not trusted blindly', async () => {
    const { ledger, dest } = setup();
    emit(ledger, 30, 'a');
    await once(ledger, dest);
    const seg = segmentsOf(ledger)[0]!;
    fs.rmSync(path.join(ledger, '.shipper'), { recursive: true });
    const other = setup();
    emit(other.ledger, 40, 'b');
    fs.writeFileSync(path.join(ledger, seg), fs.readFileSync(path.join(other.ledger, segmentsOf(other.ledger)[0]!)));
    await once(ledger, dest);
    const objects = await shippedObjects(dest);
    expect(checkExactlyOnce(ledger, objects, { requireComplete: true })).toEqual([]);
    expect(shippedEntries(objects.filter((o) => o.gen === 1)).length).toBe(40);
  });

  it('a corrupt position store falls back to the destination: no duplicate, nothing skipped', async () => {
    const { ledger, dest } = setup();
    emit(ledger, 40, 'a');
    await once(ledger, dest);
    const before = (await shippedObjects(dest)).length;
    fs.writeFileSync(path.join(ledger, '.shipper', 'positions.json'), '{"v":1,"segments":{"ledger-x":');
    const more = emit(ledger, 25, 'b');
    const logs = await once(ledger, dest);
    expect(logs.some((l) => l.level === 50 && String(l.msg).includes('position store is corrupt'))).toBe(true);
    expect(fs.readdirSync(path.join(ledger, '.shipper')).some((n) => n.startsWith('positions.json.corrupt-'))).toBe(true);
    const objects = await shippedObjects(dest);
    expect(objects.length).toBeGreaterThan(before);
    expect(checkExactlyOnce(ledger, objects, { requireComplete: true })).toEqual([]);
    const ids = shippedEntries(objects).map((e) => e.id);
    expect(new Set(ids).size).toBe(65);
    expect(ids.slice(-25)).toEqual(more);
  });

  it('killed between the two objects of a range: the missing one is re-cut under the same name, nothing else is re-uploaded', async () => {
    const { ledger, dest } = setup();
    const rec = new FileRecorder({ dir: ledger, node: 'node-a' });
    for (let i = 0; i < 10; i++) rec.emit(vmStart(`a-${i}`));
    fs.appendFileSync(path.join(ledger, 'ledger.jsonl'), 'garbage line\n');
    for (let i = 0; i < 10; i++) rec.emit(vmStart(`b-${i}`));
    await rec.close();
    await once(ledger, dest, { batchBytes: 1024 });
    const before = await shippedObjects(dest);
    const pairLedger = before.find((o) => o.cls === 'ledger' && before.some((q) => q.cls === 'quarantine' && q.start === o.start))!;
    expect(pairLedger).toBeDefined();
    // As if the shipper died after storing the quarantine object and before the ledger object and
    // its position: remove the ledger object and forget every position.
    await dest.delete(pairLedger.name);
    fs.rmSync(path.join(ledger, '.shipper'), { recursive: true });
    const flaky = new FlakyDestination(dest);
    await once(ledger, flaky, { batchBytes: 1024 });
    expect(flaky.created).toEqual([pairLedger.name]);
    const after = await shippedObjects(dest);
    expect(after.map((o) => o.name).sort()).toEqual(before.map((o) => o.name).sort());
    expect(checkExactlyOnce(ledger, after, { requireComplete: true })).toEqual([]);
  });

  it('a segment deleted while being read: no crash, a clear log, the other segments still ship', async () => {
    const { ledger, dest } = setup();
    // Several segments of ~8 KB; a slow destination keeps the shipper inside the first ones.
    emit(ledger, 400, 'a', 8_000);
    const segs = segmentsOf(ledger);
    expect(segs.length).toBeGreaterThan(5);
    const slow: Destination = Object.assign(Object.create(dest) as LocalDirDestination, {
      putIfAbsent: async (...args: Parameters<Destination['putIfAbsent']>) => {
        await sleep(30);
        return dest.putIfAbsent(...args);
      },
    });
    const { logger, records } = await memoryLogger();
    const running = await startShipper({ ledgerDir: ledger, destination: slow, node: 'node-a', logger, batchBytes: 1024, rescanMs: 50, batchMs: 0, sealQuietMs: 0 });
    // Delete one segment the shipper has started but not finished, and one it has not reached.
    const victim = segs[1]!;
    const later = segs[3]!;
    await until('the shipper to be inside the second segment', async () => (await shippedObjects(dest)).some((o) => o.segment === victim));
    const victimSize = fs.statSync(path.join(ledger, victim)).size;
    fs.unlinkSync(path.join(ledger, victim));
    fs.unlinkSync(path.join(ledger, later));
    await until('the rest to ship', async () => {
      const objs = await shippedObjects(dest);
      return segmentsOf(ledger).every((s) => objs.some((o) => o.segment === s && o.end === fs.statSync(path.join(ledger, s)).size));
    });
    await running.stop();
    await running.done;
    const objects = await shippedObjects(dest);
    expect(checkExactlyOnce(ledger, objects, { requireComplete: true })).toEqual([]);
    // The victim was open: what was read from it shipped exactly once, as one contiguous prefix.
    const victimRanges = objects.filter((o) => o.segment === victim).sort((a, b) => a.start - b.start);
    let at = 0;
    for (const r of victimRanges) {
      expect(r.start).toBe(at);
      at = r.end;
    }
    expect(at).toBeLessThanOrEqual(victimSize);
    expect(records.some((l) => String(l.msg).includes('removed') || String(l.msg).includes('deleted before it was fully shipped'))).toBe(true);
    expect(records.some((l) => l.segment === later)).toBe(true);
    expect(records.filter((l) => (l.level as number) >= 50 && !String(l.msg).includes('deleted before')).map((l) => l.msg)).toEqual([]);
  });
});

describe('shipper: retention', () => {
  it('deletes only sealed, fully shipped, non-active segments past retention; never while the destination is down', async () => {
    const { ledger, dest } = setup();
    emit(ledger, 300, 'a', 10_000);
    const segs = segmentsOf(ledger);
    const active = fs.readlinkSync(path.join(ledger, 'ledger.jsonl'));
    const copies = new Map(segs.map((s) => [s, fs.readFileSync(path.join(ledger, s))]));
    expect(segs.length).toBeGreaterThan(3);

    // Destination down: retention must not delete a byte.
    let down = true;
    const gated: Destination = Object.assign(Object.create(dest) as LocalDirDestination, {
      putIfAbsent: async (...args: Parameters<Destination['putIfAbsent']>) => {
        if (down) throw Object.assign(new Error('injected 503'), { code: 'E503' });
        return dest.putIfAbsent(...args);
      },
    });
    const { logger } = await memoryLogger();
    const running = await startShipper({ ledgerDir: ledger, destination: gated, node: 'node-a', logger, retentionMs: 1, sealQuietMs: 0, rescanMs: 30, batchMs: 0, retry: { baseMs: 5, capMs: 20 } });
    await sleep(600);
    expect(segmentsOf(ledger)).toEqual(segs);
    down = false;
    await until('retention to delete the sealed segments', () => segmentsOf(ledger).length === 1);
    await running.stop();
    expect(segmentsOf(ledger)).toEqual([active]);
    // Every deleted byte is in the bucket, exactly once.
    const objects = await shippedObjects(dest);
    expect(checkExactlyOnce(ledger, objects, { requireComplete: true, segments: copies })).toEqual([]);
    const status = running.status();
    expect(status.counters.segments_deleted).toBe(segs.length - 1);
  });

  it('keeps segments younger than the retention period', async () => {
    const { ledger, dest } = setup();
    emit(ledger, 100, 'a', 5_000);
    const segs = segmentsOf(ledger);
    await once(ledger, dest, { retentionMs: 3_600_000, sealQuietMs: 0 });
    expect(segmentsOf(ledger)).toEqual(segs);
    // Pretend two hours passed for one sealed segment (mtime in the past): now it may go.
    const old = segs[0]!;
    const past = new Date(Date.now() - 2 * 3_600_000);
    fs.utimesSync(path.join(ledger, old), past, past);
    await once(ledger, dest, { retentionMs: 3_600_000, sealQuietMs: 0 });
    expect(segmentsOf(ledger)).toEqual(segs.slice(1));
  });
});
