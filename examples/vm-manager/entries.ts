import { KINDS, type EntryInput, type Reason, type Shape } from 'metering-ledger';
import type { SnapshotRecord, VmRecord } from './records.js';

type VmKind = typeof KINDS.VM_COMPUTE_START | typeof KINDS.VM_COMPUTE_STOP | typeof KINDS.VM_COMPUTE_RUNNING | typeof KINDS.VM_STORAGE_START | typeof KINDS.VM_STORAGE_STOP | typeof KINDS.VM_STORAGE_RUNNING;
type SnapKind = typeof KINDS.SNAP_STORAGE_START | typeof KINDS.SNAP_STORAGE_STOP | typeof KINDS.SNAP_STORAGE_RUNNING;

/** An entry about a VM. `at` is shared by every entry of one operation so adjacent stop/start events line up. */
export function vmEntry(kind: VmKind, reason: Reason, vm: VmRecord, at: Date, sourceSnapshotId?: string | null): EntryInput {
  const entry: EntryInput = { kind, reason, vm_id: vm.id, hypervisor: vm.hypervisor, shape: { ...vm.shape }, emitted_at: at };
  if (sourceSnapshotId) entry.source_snapshot_id = sourceSnapshotId;
  return entry;
}

/** A snapshot bills only the storage it occupies. */
export function snapshotShape(snap: SnapshotRecord): Shape {
  return { cpu: 0, mem_bytes: 0, storage_bytes: snap.size };
}

export function snapEntry(kind: SnapKind, reason: Reason, snap: SnapshotRecord, at: Date): EntryInput {
  return { kind, reason, vm_id: snap.vm_id, snapshot_id: snap.id, hypervisor: snap.hypervisor, shape: snapshotShape(snap), emitted_at: at };
}
