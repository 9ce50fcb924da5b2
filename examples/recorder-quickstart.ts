/**
 * The README's recorder example, runnable:
 *   node --import tsx examples/recorder-quickstart.ts [ledger-dir]
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { KINDS, REASONS, emitAfterCommit, getRecorder, closeRecorder, readLedger, listSegments } from 'metering-ledger';

const dir = process.argv[2] ?? path.join(os.tmpdir(), 'metering-quickstart');

// One recorder per process, opened lazily; a NopRecorder (plus a warning) if the ledger cannot be opened.
const recorder = getRecorder({ dir, node: 'node-1' });

const shape = { cpu: 2, mem_bytes: 4 * 1024 ** 3, storage_bytes: 20 * 1024 ** 3 };

// Stage entries inside your store update; they are emitted only after it commits, outside the lock.
await emitAfterCommit(recorder, async (stage) => {
  stage.begin(); // a retried closure starts from an empty stage
  // ... mutate and persist the VM record here ...
  stage.add({ kind: KINDS.VM_STORAGE_START, reason: REASONS.BOOT, vm_id: 'vm-1', hypervisor: 'cloud-hypervisor', shape });
  stage.add({ kind: KINDS.VM_COMPUTE_START, reason: REASONS.BOOT, vm_id: 'vm-1', hypervisor: 'cloud-hypervisor', shape });
});

// Fire-and-forget: never throws, returns the entry id (undefined if it was dropped).
const now = new Date();
recorder.emit({ kind: KINDS.VM_COMPUTE_STOP, reason: REASONS.STOP_USER, vm_id: 'vm-1', shape, emitted_at: now });

await closeRecorder();

for (const segment of listSegments(dir)) {
  for await (const record of readLedger(path.join(dir, segment))) {
    if (record.type === 'entry') console.log(record.offset, record.entry.kind, record.entry.vm_id, record.entry.seq);
    else console.log(record.offset, 'bad line:', record.reason);
  }
}
