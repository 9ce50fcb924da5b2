import * as fs from 'node:fs';
import * as path from 'node:path';
import Ajv2020 from 'ajv/dist/2020.js';
import { afterEach, describe, expect, test } from 'vitest';
import {
  ACTIVE_LINK,
  FileRecorder,
  KINDS,
  NopRecorder,
  REASONS,
  activeSegmentName,
  closeRecorder,
  getRecorder,
  listSegments,
  segmentCreatedAt,
  openRecorder,
  resolveLedgerDir,
  serializeEntry,
  setRecorder,
  type EntryInput,
} from 'metering-ledger';
import { startNewSegment, withLedgerLockSync } from '../src/ledger-layout.js';
import { vmStart } from './support/entries.js';
import { readAll } from './support/ledger.js';
import { memoryLogger, tempDir } from './support/tmp.js';

const cleanups: (() => void)[] = [];
afterEach(async () => {
  await closeRecorder();
  while (cleanups.length) cleanups.pop()!();
});
function scratch(): string {
  const t = tempDir('recorder');
  cleanups.push(t.cleanup);
  return t.dir;
}

describe('FileRecorder', () => {
  test('appends one schema-valid line per entry, in order, with seq 1..n', async () => {
    const dir = path.join(scratch(), 'metering');
    const rec = new FileRecorder({ dir, node: 'node-a' });
    const ids: string[] = [];
    for (let i = 0; i < 50; i++) ids.push(rec.emit(vmStart(`vm-${i}`))!);
    rec.emit({ kind: KINDS.SNAP_STORAGE_START, reason: REASONS.CLONE, snapshot_id: 'snap-"1"\\', source_snapshot_id: 'snap-0', vm_id: 'vm-ü', shape: { cpu: 0, mem_bytes: 0, storage_bytes: 5 } });
    await rec.close();

    const records = await readAll(dir);
    expect(records.every((r) => r.type === 'entry')).toBe(true);
    const entries = records.map((r) => (r.type === 'entry' ? r.entry : undefined)!);
    expect(entries.slice(0, 50).map((e) => e.id)).toEqual(ids);
    expect(entries.map((e) => e.seq)).toEqual(Array.from({ length: 51 }, (_, i) => i + 1));
    expect(new Set(entries.map((e) => e.writer))).toEqual(new Set([rec.writer]));

    const schema = JSON.parse(fs.readFileSync(new URL('../schema/entry.v1.json', import.meta.url), 'utf8')) as object;
    const validate = new Ajv2020.default({ strict: false }).compile(schema);
    const raw = fs.readFileSync(path.join(dir, ACTIVE_LINK), 'utf8').trimEnd().split('\n');
    expect(raw).toHaveLength(51);
    for (const line of raw) {
      const ok = validate(JSON.parse(line));
      expect(validate.errors ?? []).toEqual([]);
      expect(ok).toBe(true);
      expect(line.startsWith('{"v":1,"id":"')).toBe(true);
      // The hot path builds lines by hand; they must match the reference serializer byte for byte.
      expect(line).toBe(serializeEntry(JSON.parse(line)));
    }
    // The schema must also reject what the recorder rejects.
    expect(validate({ ...JSON.parse(raw[0]!), kind: 'vm.compute.running' })).toBe(false);
    expect(validate({ ...JSON.parse(raw[0]!), shape: { cpu: -1, mem_bytes: 0, storage_bytes: 0 } })).toBe(false);
  });

  test('ledger files are 0600 and the directory 0700', async () => {
    const dir = path.join(scratch(), 'deep', 'metering');
    const rec = new FileRecorder({ dir, node: 'n' });
    rec.emit(vmStart('vm-1'));
    await rec.close();
    expect(fs.statSync(dir).mode & 0o777).toBe(0o700);
    for (const s of listSegments(dir)) expect(fs.statSync(path.join(dir, s)).mode & 0o777).toBe(0o600);
  });

  test('invalid entries are not written, are counted and logged with the reason, and never throw', async () => {
    const dir = scratch();
    const { logger, records } = await memoryLogger();
    const rec = new FileRecorder({ dir, node: 'n', logger });
    expect(rec.emit({ ...vmStart('vm-1'), kind: 'vm.gpu.start' } as unknown as EntryInput)).toBeUndefined();
    expect(rec.emit(null as unknown as EntryInput)).toBeUndefined();
    expect(rec.emit({ ...vmStart('vm-1'), shape: { cpu: 1, mem_bytes: -5, storage_bytes: 0 } })).toBeUndefined();
    expect(rec.emit(vmStart('vm-ok'))).toBeTypeOf('string');
    await rec.close();
    expect(rec.stats()).toMatchObject({ written: 1, droppedInvalid: 3, droppedWrite: 0 });
    const all = await readAll(dir);
    expect(all).toHaveLength(1);
    // The one written entry has seq 1: invalid entries spend no seq (they are not loss).
    expect(all[0]!.type === 'entry' && all[0]!.entry.seq).toBe(1);
    const reasons = records.map((r) => r.reason);
    expect(reasons).toContain('unknown kind "vm.gpu.start"');
    expect(reasons).toContain('shape.mem_bytes must not be negative, got -5');
  });

  test('emit after close is dropped and counted, not thrown', async () => {
    const { logger } = await memoryLogger();
    const rec = new FileRecorder({ dir: scratch(), node: 'n', logger });
    await rec.close();
    expect(rec.emit(vmStart('vm-1'))).toBeUndefined();
    expect(rec.stats().droppedWrite).toBe(1);
  });

  test('a torn last line (crash mid-write) does not corrupt the next entry', async () => {
    const dir = scratch();
    const first = new FileRecorder({ dir, node: 'n' });
    first.emit(vmStart('vm-1'));
    await first.close();
    // Simulate a writer killed mid-write: half a line, no newline.
    fs.appendFileSync(path.join(dir, ACTIVE_LINK), '{"v":1,"id":"01TORN","node":"n","wri');
    const second = new FileRecorder({ dir, node: 'n' });
    second.emit(vmStart('vm-2'));
    await second.close();
    const all = await readAll(dir);
    expect(all.map((r) => r.type)).toEqual(['entry', 'invalid', 'entry']);
    expect(all[2]!.type === 'entry' && all[2]!.entry.vm_id).toBe('vm-2');
  });

  test('a torn line written by another process is split off by the reader', async () => {
    const dir = scratch();
    const rec = new FileRecorder({ dir, node: 'n', checkIntervalMs: 1_000_000 });
    rec.emit(vmStart('vm-1'));
    // Another process tears a line after we opened: we cannot know, the reader resyncs.
    fs.appendFileSync(path.join(dir, ACTIVE_LINK), '{"v":1,"id":"01TORN","no');
    rec.emit(vmStart('vm-2'));
    await rec.close();
    const all = await readAll(dir);
    expect(all.map((r) => r.type)).toEqual(['entry', 'invalid', 'entry']);
    expect(all[1]!.type === 'invalid' && all[1]!.reason).toMatch(/torn/);
    expect(all[2]!.type === 'entry' && all[2]!.entry.vm_id).toBe('vm-2');
  });

  test('rotates by size into sealed segments without splitting an entry', async () => {
    const dir = scratch();
    const rec = new FileRecorder({ dir, node: 'n', maxSegmentBytes: 4096, checkIntervalMs: 0 });
    for (let i = 0; i < 200; i++) rec.emit(vmStart(`vm-${i}`));
    await rec.close();
    const segments = listSegments(dir);
    expect(segments.length).toBeGreaterThan(5);
    expect(rec.stats().rotations).toBe(segments.length - 1);
    expect(activeSegmentName(dir)).toBe(segments.at(-1));
    const all = await readAll(dir);
    expect(all.filter((r) => r.type === 'entry')).toHaveLength(200);
    for (const s of segments) expect(fs.readFileSync(path.join(dir, s), 'utf8').endsWith('\n')).toBe(true);
  });

  test('segments created within one millisecond still sort in creation order, the active one last', () => {
    const dir = scratch();
    const rec = new FileRecorder({ dir, node: 'n' });
    rec.emit(vmStart('vm-0'));
    const created = [activeSegmentName(dir)!];
    // The same instant for every rotation: only the name rule can keep them in order.
    const instant = new Date(segmentCreatedAt(created[0]!)!);
    for (let i = 0; i < 30; i++) created.push(withLedgerLockSync(dir, 8_000, () => startNewSegment(dir, instant))!);
    expect(listSegments(dir)).toEqual(created);
    expect(activeSegmentName(dir)).toBe(created.at(-1));
    // A hostile name far in the future is not followed: new segments keep the clock's time.
    fs.writeFileSync(path.join(dir, 'ledger-20991231T235959999Z-zzzzzzzz.jsonl'), '');
    const now = new Date();
    const fresh = withLedgerLockSync(dir, 8_000, () => startNewSegment(dir, now))!;
    expect(segmentCreatedAt(fresh)).toBe(now.getTime());
    return rec.close();
  });

  test('rotates by age', async () => {
    const dir = scratch();
    const rec = new FileRecorder({ dir, node: 'n', maxSegmentAgeMs: 30, checkIntervalMs: 0 });
    rec.emit(vmStart('vm-1'));
    await new Promise((r) => setTimeout(r, 60));
    rec.emit(vmStart('vm-2'));
    await rec.close();
    expect(listSegments(dir)).toHaveLength(2);
  });

  test('a writer follows a rotation done by another writer instead of writing into the old segment', async () => {
    const dir = scratch();
    const a = new FileRecorder({ dir, node: 'n', checkIntervalMs: 0 });
    const b = new FileRecorder({ dir, node: 'n', checkIntervalMs: 0, maxSegmentBytes: 1 });
    a.emit(vmStart('a-1'));
    b.emit(vmStart('b-1')); // b finds the segment over its limit and rotates
    b.emit(vmStart('b-2'));
    a.emit(vmStart('a-2'));
    await a.close();
    await b.close();
    const segments = listSegments(dir);
    const active = activeSegmentName(dir)!;
    const inActive = (await readAll(dir)).filter((r) => r.segment === active && r.type === 'entry').map((r) => (r.type === 'entry' ? r.entry.vm_id : ''));
    expect(segments.length).toBeGreaterThanOrEqual(2);
    expect(inActive).toContain('a-2');
  });

  test('group-fsync and fsync modes write the same lines and flush resolves', async () => {
    for (const durability of ['fsync', 'group-fsync'] as const) {
      const dir = scratch();
      const rec = new FileRecorder({ dir, node: 'n', durability, fsyncIntervalMs: 5 });
      for (let i = 0; i < 20; i++) rec.emit(vmStart(`vm-${i}`));
      await rec.flush();
      await rec.close();
      expect((await readAll(dir)).filter((r) => r.type === 'entry')).toHaveLength(20);
    }
  });

  test('a plain ledger.jsonl file (older writer) is adopted as a segment, nothing lost', async () => {
    const dir = scratch();
    const old = new FileRecorder({ dir: path.join(dir, 'tmp'), node: 'n' });
    old.emit(vmStart('legacy'));
    await old.close();
    const legacyBytes = fs.readFileSync(path.join(dir, 'tmp', ACTIVE_LINK));
    fs.writeFileSync(path.join(dir, ACTIVE_LINK), legacyBytes);
    const rec = new FileRecorder({ dir, node: 'n' });
    rec.emit(vmStart('new'));
    await rec.close();
    const ids = (await readAll(dir)).map((r) => (r.type === 'entry' ? r.entry.vm_id : r.type));
    expect(ids).toEqual(['legacy', 'new']);
    expect(fs.lstatSync(path.join(dir, ACTIVE_LINK)).isSymbolicLink()).toBe(true);
  });

  test('rejects a node id that could escape an object prefix', () => {
    expect(() => new FileRecorder({ dir: scratch(), node: '../evil' })).toThrow(/node id/);
    expect(() => new FileRecorder({ dir: scratch(), node: 'a/b' })).toThrow(/node id/);
  });
});

describe('openRecorder fallback', () => {
  test('an unopenable ledger logs a warning and yields a NopRecorder, never undefined', async () => {
    const base = scratch();
    const blocker = path.join(base, 'not-a-dir');
    fs.writeFileSync(blocker, 'x');
    const { logger, records } = await memoryLogger();
    const rec = openRecorder({ dir: path.join(blocker, 'metering'), logger });
    expect(rec).toBeInstanceOf(NopRecorder);
    expect(rec.emit(vmStart('vm-1'))).toBeUndefined();
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({ level: 40, code: 'ENOTDIR' });
    expect(String(records[0]!.msg)).toMatch(/NopRecorder/);
  });

  test('a bad node id also falls back to Nop with a warning', async () => {
    const { logger, records } = await memoryLogger();
    expect(openRecorder({ dir: scratch(), node: 'bad node', logger })).toBeInstanceOf(NopRecorder);
    expect(records[0]!.err).toMatch(/node id/);
  });
});

describe('process-wide recorder', () => {
  test('opened once, lazily, from METERING_DIR, and shared', async () => {
    const root = scratch();
    const before = process.env.METERING_DIR;
    process.env.METERING_DIR = root;
    try {
      expect(resolveLedgerDir()).toBe(path.join(root, 'metering'));
      const a = getRecorder({ node: 'n' });
      const b = getRecorder();
      expect(a).toBe(b);
      expect(a).toBeInstanceOf(FileRecorder);
      a.emit(vmStart('vm-1'));
      b.emit(vmStart('vm-2'));
      await closeRecorder();
      const entries = (await readAll(path.join(root, 'metering'))).filter((r) => r.type === 'entry');
      expect(entries).toHaveLength(2);
      expect(getRecorder({ node: 'n' })).not.toBe(a);
    } finally {
      if (before === undefined) delete process.env.METERING_DIR;
      else process.env.METERING_DIR = before;
    }
  });

  test('setRecorder injects one (tests) and returns the previous', () => {
    const nop = new NopRecorder();
    setRecorder(nop);
    expect(getRecorder()).toBe(nop);
    expect(setRecorder(undefined)).toBe(nop);
  });
});
