/**
 * The recorder's emit loop alone (the entries of bench/recorder.ts), to run under `node --cpu-prof`
 * when a recorder target is missed:
 *
 *   node --cpu-prof --cpu-prof-dir=/tmp/prof --import tsx bench/support/recorder-hot-loop.ts [--n 1000000] [--raw]
 *
 * --raw runs the raw limit instead (JSON.stringify + one fs.writeSync per line), for comparison.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { FileRecorder, KINDS, REASONS, ulid, type EntryInput } from 'metering-ledger';

const { values } = parseArgs({ options: { n: { type: 'string', default: '1000000' }, raw: { type: 'boolean', default: false } } });
const n = Number(values.n);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-hot-'));
const ins: EntryInput[] = Array.from({ length: 10_000 }, (_, i) => ({
  kind: i % 2 ? KINDS.VM_COMPUTE_STOP : KINDS.VM_COMPUTE_START,
  reason: i % 2 ? REASONS.STOP_USER : REASONS.BOOT,
  vm_id: `vm-${(i >> 1).toString(36).padStart(8, '0')}`,
  hypervisor: 'cloud-hypervisor',
  shape: { cpu: 2 + (i % 7), mem_bytes: (4 + (i % 3)) * 1024 ** 3, storage_bytes: 20 * 1024 ** 3 },
}));
const t0 = performance.now();
if (values.raw) {
  const now = new Date().toISOString();
  const wire = ins.map((e, i) => ({ v: 1, id: ulid(), node: 'bench', writer: 'w', seq: i + 1, ...e, emitted_at: now }));
  const fd = fs.openSync(path.join(dir, 'raw.jsonl'), 'a');
  for (let i = 0; i < n; i++) fs.writeSync(fd, JSON.stringify(wire[i % wire.length]) + '\n');
  fs.closeSync(fd);
} else {
  const rec = new FileRecorder({ dir, node: 'bench', maxSegmentBytes: 1 << 30 });
  for (let i = 0; i < n; i++) rec.emit(ins[i % ins.length]!);
  await rec.close();
}
console.log(`${values.raw ? 'raw' : 'recorder'}: ${Math.round(n / ((performance.now() - t0) / 1000))} entries/s`);
fs.rmSync(dir, { recursive: true, force: true });
