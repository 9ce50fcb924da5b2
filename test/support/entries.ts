import { KINDS, REASONS, type EntryInput } from 'metering-ledger';

/** A realistic entry: a VM booting with 2 vCPU, 4 GiB memory, 20 GiB disk. */
export function vmStart(vmId: string, extra: Partial<EntryInput> = {}): EntryInput {
  return {
    kind: KINDS.VM_COMPUTE_START,
    reason: REASONS.BOOT,
    vm_id: vmId,
    hypervisor: 'cloud-hypervisor',
    shape: { cpu: 2, mem_bytes: 4 * 1024 ** 3, storage_bytes: 20 * 1024 ** 3 },
    ...extra,
  };
}

export function vmStop(vmId: string, extra: Partial<EntryInput> = {}): EntryInput {
  return vmStart(vmId, { kind: KINDS.VM_COMPUTE_STOP, reason: REASONS.STOP_USER, ...extra });
}
