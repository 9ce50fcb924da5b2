/**
 * emit never throws and never writes what it did not validate, whatever the caller passes: throwing
 * getters, throwing Proxies, getters whose value changes between reads. Checked on a real ledger
 * file: every line is a valid entry of this recorder, seqs run 1..n without forgery.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { FileRecorder, KINDS, parseLedgerBuffer, type EntryInput } from 'metering-ledger';
import { vmStart } from './support/entries.js';
import { memoryLogger, tempDir } from './support/tmp.js';

const tmp = tempDir('hostile-input');
afterAll(tmp.cleanup);

function throwingGetter(field: string): EntryInput {
  const e = { ...vmStart('vm-g') } as Record<string, unknown>;
  Object.defineProperty(e, field, { enumerable: true, get: () => { throw new Error(`boom from ${field}`); } });
  return e as unknown as EntryInput;
}

/** Returns a harmless value the first time it is read, a line-forging one afterwards. */
function changingGetter(field: 'kind' | 'reason' | 'vm_id'): EntryInput {
  const e = { ...vmStart('vm-c') } as Record<string, unknown>;
  const first = e[field];
  let reads = 0;
  const forged = `${String(first)}","writer":"forged","seq":1,"x":"`;
  Object.defineProperty(e, field, { enumerable: true, get: () => (reads++ === 0 ? first : forged) });
  return e as unknown as EntryInput;
}

function changingShape(): EntryInput {
  let reads = 0;
  const shape = { mem_bytes: 1, storage_bytes: 1 } as Record<string, unknown>;
  Object.defineProperty(shape, 'cpu', { enumerable: true, get: () => (reads++ === 0 ? 2 : '2},"writer":"forged","seq":1,"y":{"a":1') });
  return { ...vmStart('vm-s'), shape } as unknown as EntryInput;
}

describe('emit with hostile input', () => {
  test('throwing getters and Proxies are dropped and counted; changing getters cannot forge a line', async () => {
    const dir = path.join(tmp.dir, 'ledger');
    const { logger, records } = await memoryLogger();
    const rec = new FileRecorder({ dir, node: 'node-h', logger });
    const hostile: unknown[] = [
      throwingGetter('kind'),
      throwingGetter('shape'),
      throwingGetter('emitted_at'),
      new Proxy(vmStart('vm-p'), { get: () => { throw new Error('proxy get'); } }),
      new Proxy(vmStart('vm-p'), { ownKeys: () => { throw new Error('proxy ownKeys'); } }),
      new Proxy(vmStart('vm-p'), { has: () => { throw new Error('proxy has'); }, getOwnPropertyDescriptor: () => { throw new Error('proxy gopd'); } }),
      { ...vmStart('vm-d'), emitted_at: new Proxy(new Date(), {}) },
      { ...vmStart('vm-x'), shape: new Proxy({}, { get: () => { throw new Error('shape proxy'); } }) },
      Object.create(new Proxy({}, { get: () => { throw new Error('prototype proxy'); } })),
      null,
      42,
      'vm.compute.start',
    ];
    for (const input of hostile) {
      expect(() => rec.emit(input as EntryInput)).not.toThrow();
    }
    // Values read once: the copy is what gets validated and written, so these are recorded as read first.
    const ids = [rec.emit(changingGetter('kind')), rec.emit(changingGetter('reason')), rec.emit(changingGetter('vm_id')), rec.emit(changingShape())];
    expect(ids.every((id) => typeof id === 'string')).toBe(true);
    rec.emit(vmStart('vm-ok', { kind: KINDS.VM_COMPUTE_START }));
    await rec.close();

    const segs = fs.readdirSync(dir).filter((n) => /^ledger-.*\.jsonl$/.test(n));
    const bytes = Buffer.concat(segs.sort().map((n) => fs.readFileSync(path.join(dir, n))));
    const out = parseLedgerBuffer(bytes);
    expect(out.every((r) => r.type === 'entry'), JSON.stringify(out.filter((r) => r.type !== 'entry').map((r) => r.type === 'invalid' && r.reason))).toBe(true);
    const entries = out.flatMap((r) => (r.type === 'entry' ? [r.entry] : []));
    expect(entries.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5]);
    expect(new Set(entries.map((e) => e.writer))).toEqual(new Set([rec.writer]));
    expect(bytes.toString()).not.toContain('forged');
    expect(entries.map((e) => e.vm_id)).toEqual(['vm-c', 'vm-c', 'vm-c', 'vm-s', 'vm-ok']);
    expect(entries[3]!.shape).toEqual({ cpu: 2, mem_bytes: 1, storage_bytes: 1 });
    expect(rec.stats().droppedInvalid).toBe(hostile.length);
    expect(records.some((r) => r.msg === 'metering: invalid entry not recorded')).toBe(true);
  });
});
