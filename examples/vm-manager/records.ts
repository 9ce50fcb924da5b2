import type { Shape } from 'metering-ledger';

/** Lifecycle state of a VM. `error` means "we could not tell what the VMM did": its interval stays open. */
export type VmState = 'created' | 'running' | 'stopped' | 'error';

export interface VmRecord {
  id: string;
  state: VmState;
  shape: Shape;
  hypervisor: string;
  /** The VMM process while one was started for this VM; kept after a crash so the next command can prove it dead. */
  pid: number | null;
  /** Set by the first successful start: later starts are restarts. */
  first_booted: boolean;
  created_at: string;
  /** Start of the current (or last) compute interval. */
  started_at: string | null;
  /**
   * The open-interval sentinel: null while a compute interval is open (started_at set), set when it was
   * closed. Every transition into running clears it; only a recorded compute stop sets it. Comparing
   * started_at with stopped_at instead would break when the clock steps backwards.
   */
  stopped_at: string | null;
  /** The snapshot this VM was cloned or restored from. */
  source_snapshot_id: string | null;
}

export interface SnapshotRecord {
  id: string;
  vm_id: string;
  /** Bytes of storage the snapshot occupies. */
  size: number;
  created_at: string;
  /** What a clone of this snapshot gets: the VM's shape and hypervisor when the snapshot was taken. */
  vm_shape: Shape;
  hypervisor: string;
}

/** The whole store file. */
export interface StoreData {
  version: 1;
  vms: Record<string, VmRecord>;
  snapshots: Record<string, SnapshotRecord>;
}

export function emptyStore(): StoreData {
  return { version: 1, vms: {}, snapshots: {} };
}

/** True while the record has a compute interval the ledger has not seen closed. */
export function hasOpenComputeInterval(vm: VmRecord): boolean {
  return vm.started_at !== null && vm.stopped_at === null;
}
