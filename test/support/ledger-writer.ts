/**
 * A writer process for shipper tests and benchmarks: emits VM entries into a ledger directory with
 * the real recorder. Usage: ledger-writer.ts <dir> <count> [ratePerSec=0 (as fast as possible)]
 * [maxSegmentBytes] [node]. Prints the ids it wrote, one per line, to stdout when
 * PRINT_IDS=1, and always a final JSON summary line on stderr. GARBAGE_EVERY=N appends a malformed
 * line (one O_APPEND write, like a buggy writer) through the active link after every N entries.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FileRecorder, KINDS, REASONS } from 'metering-ledger';

const [dir, countArg, rateArg, segArg, nodeArg] = process.argv.slice(2);
if (!dir || !countArg) throw new Error('usage: ledger-writer.ts <dir> <count> [ratePerSec] [maxSegmentBytes] [node]');
const count = Number(countArg);
const rate = Number(rateArg ?? 0);
const recorder = new FileRecorder({ dir, node: nodeArg ?? 'node-a', maxSegmentBytes: segArg ? Number(segArg) : undefined });
const printIds = process.env.PRINT_IDS === '1';
const garbageEvery = Number(process.env.GARBAGE_EVERY ?? 0);
const ids: string[] = [];
const started = Date.now();
for (let i = 0; i < count; i++) {
  if (rate > 0) {
    const due = started + (i * 1000) / rate;
    const wait = due - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
  const id = recorder.emit({
    kind: i % 2 === 0 ? KINDS.VM_COMPUTE_START : KINDS.VM_COMPUTE_STOP,
    reason: i % 2 === 0 ? REASONS.BOOT : REASONS.STOP_USER,
    vm_id: `vm-${process.pid}-${i}`,
    hypervisor: 'cloud-hypervisor',
    shape: { cpu: 2, mem_bytes: 4 * 1024 ** 3, storage_bytes: 20 * 1024 ** 3 },
  });
  if (id && printIds) ids.push(id);
  if (garbageEvery > 0 && i % garbageEvery === garbageEvery - 1) fs.appendFileSync(path.join(dir, 'ledger.jsonl'), `not json from ${process.pid} #${i}\n`);
  if (printIds && ids.length >= 1000) process.stdout.write(ids.splice(0).join('\n') + '\n');
}
if (printIds && ids.length) process.stdout.write(ids.join('\n') + '\n');
await recorder.close();
process.stderr.write(JSON.stringify({ writer: recorder.writer, stats: recorder.stats() }) + '\n');
