import { describe, expect, test } from 'vitest';
import {
  ALL_KINDS,
  ALL_REASONS,
  CaptureRecorder,
  KINDS,
  MeteringValidationError,
  NopRecorder,
  REASONS,
  checkWireEntry,
  describeKind,
  orNop,
  type EntryInput,
} from 'metering-ledger';
import { vmStart } from './support/entries.js';

const bad = (patch: Record<string, unknown>): EntryInput => ({ ...vmStart('vm-1'), ...patch }) as EntryInput;

describe('wire constants', () => {
  test('kind and reason strings are locked (they are the contract with every consumer)', () => {
    expect(ALL_KINDS).toEqual([
      'vm.compute.start',
      'vm.compute.stop',
      'vm.storage.start',
      'vm.storage.stop',
      'snap.storage.start',
      'snap.storage.stop',
      'vm.compute.running',
      'vm.storage.running',
      'snap.storage.running',
    ]);
    expect(ALL_REASONS).toEqual(['boot', 'restart', 'clone', 'restore', 'hibernate-wake', 'stop-user', 'stop-crash', 'vm-rm', 'snap-rm', 'baseline']);
  });

  test('kinds describe their family, phase and id field', () => {
    expect(describeKind('snap.storage.running')).toEqual({ family: 'snap.storage', phase: 'running', idField: 'snapshot_id' });
    expect(describeKind('vm.compute.stop')).toEqual({ family: 'vm.compute', phase: 'stop', idField: 'vm_id' });
    expect(describeKind('vm.nope.start')).toBeUndefined();
  });
});

describe('CaptureRecorder is strict', () => {
  const cases: [string, EntryInput, RegExp][] = [
    ['unknown kind', bad({ kind: 'vm.gpu.start' }), /unknown kind/],
    ['unknown reason', bad({ reason: 'whim' }), /unknown reason/],
    ['missing vm_id', bad({ vm_id: undefined }), /vm_id is required/],
    ['empty vm_id', bad({ vm_id: '' }), /vm_id must not be empty/],
    ['control character in id', bad({ vm_id: 'a\nb' }), /control character/],
    ['missing snapshot_id', { ...vmStart('vm-1'), kind: KINDS.SNAP_STORAGE_START }, /snapshot_id is required/],
    ['negative cpu', bad({ shape: { cpu: -1, mem_bytes: 0, storage_bytes: 0 } }), /shape.cpu must not be negative/],
    ['fractional memory', bad({ shape: { cpu: 1, mem_bytes: 1.5, storage_bytes: 0 } }), /shape.mem_bytes must be a safe integer/],
    ['unsafe integer', bad({ shape: { cpu: 1, mem_bytes: 2 ** 53, storage_bytes: 0 } }), /safe integer/],
    ['missing storage_bytes', bad({ shape: { cpu: 1, mem_bytes: 1 } }), /shape.storage_bytes is required/],
    ['string cpu', bad({ shape: { cpu: '2', mem_bytes: 1, storage_bytes: 0 } }), /safe integer/],
    ['unknown field (typo)', bad({ vmId: 'x' }), /unknown field "vmId"/],
    ['timestamp without zone', bad({ emitted_at: '2026-01-01T00:00:00' }), /RFC 3339/],
    ['garbage timestamp', bad({ emitted_at: 'yesterday' }), /RFC 3339/],
    ['invalid date object', bad({ emitted_at: new Date(Number.NaN) }), /not a valid time/],
    ['timestamp in 1970 (seconds passed as ms?)', bad({ emitted_at: new Date(1_700_000_000) }), /outside years/],
    ['baseline reason on a start', bad({ reason: REASONS.BASELINE }), /only for \*.running/],
    ['running kind without baseline reason', bad({ kind: KINDS.VM_COMPUTE_RUNNING }), /must have reason "baseline"/],
    ['stop-only reason on a start', bad({ reason: REASONS.VM_RM }), /cannot start an interval/],
    ['start-only reason on a stop', bad({ kind: KINDS.VM_COMPUTE_STOP, reason: REASONS.BOOT }), /cannot end an interval/],
  ];
  test.each(cases)('%s throws MeteringValidationError', (_name, entry, message) => {
    const rec = new CaptureRecorder();
    expect(() => rec.emit(entry)).toThrowError(MeteringValidationError);
    expect(() => rec.emit(entry)).toThrowError(message);
    expect(rec.entries()).toHaveLength(0);
  });

  test('valid entries are captured with id, writer, seq and a normalized UTC time', () => {
    const rec = new CaptureRecorder({ node: 'n1' });
    const id1 = rec.emit(vmStart('vm-1', { emitted_at: '2026-03-01T10:00:00+02:00' }));
    rec.emit(vmStart('vm-2', { emitted_at: new Date('2026-03-01T09:00:00.5Z') }));
    rec.emit({ kind: KINDS.SNAP_STORAGE_START, reason: REASONS.CLONE, snapshot_id: 's1', vm_id: 'vm-1', shape: { cpu: 0, mem_bytes: 0, storage_bytes: 10 } });
    const [a, b, c] = rec.entries();
    expect(a!.id).toBe(id1);
    expect(a!.emitted_at).toBe('2026-03-01T08:00:00.000Z');
    expect(b!.emitted_at).toBe('2026-03-01T09:00:00.500Z');
    expect([a!.seq, b!.seq, c!.seq]).toEqual([1, 2, 3]);
    expect(new Set([a!.writer, b!.writer, c!.writer]).size).toBe(1);
    expect(a!.node).toBe('n1');
    for (const e of rec.entries()) expect(checkWireEntry(e)).toBeNull();
  });

  test('helpers filter by kind, family and resource; entries() is a copy', () => {
    const rec = new CaptureRecorder();
    rec.emit(vmStart('vm-1'));
    rec.emit(vmStart('vm-1', { kind: KINDS.VM_STORAGE_START }));
    rec.emit(vmStart('vm-2'));
    rec.emit({ kind: KINDS.SNAP_STORAGE_START, reason: REASONS.BOOT, snapshot_id: 'vm-1-snap', shape: { cpu: 0, mem_bytes: 0, storage_bytes: 1 } });
    expect(rec.byKind(KINDS.VM_COMPUTE_START).map((e) => e.vm_id)).toEqual(['vm-1', 'vm-2']);
    expect(rec.byFamily('vm.storage')).toHaveLength(1);
    expect(rec.forResource('vm-1')).toHaveLength(2);
    expect(rec.kinds()).toEqual(['vm.compute.start', 'vm.storage.start', 'vm.compute.start', 'snap.storage.start']);
    const copy = rec.entries();
    copy[0]!.vm_id = 'changed';
    copy.pop();
    expect(rec.entries()[0]!.vm_id).toBe('vm-1');
    expect(rec.entries()).toHaveLength(4);
    rec.clear();
    expect(rec.entries()).toEqual([]);
  });

  test('the captured entry does not alias the caller object', () => {
    const rec = new CaptureRecorder();
    const input = vmStart('vm-1');
    rec.emit(input);
    input.shape.cpu = 99;
    expect(rec.entries()[0]!.shape.cpu).toBe(2);
  });
});

describe('NopRecorder and orNop', () => {
  test('Nop accepts anything and records nothing', async () => {
    const nop = new NopRecorder();
    expect(nop.emit(vmStart('x'))).toBeUndefined();
    await nop.flush();
    await nop.close();
    expect(nop.stats().written).toBe(0);
  });
  test('orNop returns the recorder or a shared Nop, never undefined', () => {
    const rec = new CaptureRecorder();
    expect(orNop(rec)).toBe(rec);
    expect(orNop(undefined)).toBeInstanceOf(NopRecorder);
    expect(orNop(null)).toBe(orNop(undefined));
  });
});

describe('checkWireEntry', () => {
  const good = { v: 1, id: '01ARZ3NDEKTSV4RRFFQ69G5FAV', node: 'n1', writer: 'w1', seq: 1, ...vmStart('vm-1'), emitted_at: '2026-01-01T00:00:00.000Z' };
  test('accepts a valid line and names the problem of a bad one', () => {
    expect(checkWireEntry(good)).toBeNull();
    expect(checkWireEntry({ ...good, v: 2 })).toMatch(/unsupported wire version 2/);
    expect(checkWireEntry({ ...good, seq: 0 })).toMatch(/seq/);
    expect(checkWireEntry({ ...good, emitted_at: '2026-01-01T00:00:00Z' })).toMatch(/milliseconds/);
    expect(checkWireEntry({ ...good, emitted_at: '9999-01-01T00:00:00.000Z' })).toMatch(/outside years/);
    expect(checkWireEntry([good])).toMatch(/not a JSON object/);
    expect(checkWireEntry({ ...good, id: undefined })).toMatch(/id is required/);
  });
});

describe('ulid', () => {
  test('26 Crockford base32 characters, time-prefixed and sortable by time, random part uniform-ish', async () => {
    const { ulid } = await import('metering-ledger');
    const a = ulid(1_700_000_000_000);
    const b = ulid(1_700_000_000_001);
    expect(a).toMatch(/^[0-9A-HJKMNP-TV-Z]{26}$/);
    expect(a < b).toBe(true);
    expect(a.slice(0, 10)).toBe('01HF7YAT00'); // 1.7e12 ms in Crockford base32
    const ids = Array.from({ length: 20_000 }, () => ulid(1_700_000_000_000));
    expect(new Set(ids).size).toBe(ids.length);
    // Every position of the random part uses the whole alphabet.
    for (let pos = 10; pos < 26; pos++) expect(new Set(ids.map((id) => id[pos])).size).toBe(32);
  });
});
