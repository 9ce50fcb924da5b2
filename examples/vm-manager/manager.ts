import { randomBytes } from 'node:crypto';
import { emitAfterCommit, KINDS, REASONS, type EmitStage, type Reason, type Recorder, type Shape } from 'metering-ledger';
import { snapEntry, vmEntry } from './entries.js';
import { hasOpenComputeInterval, type SnapshotRecord, type StoreData, type VmRecord } from './records.js';
import type { JsonFileStore } from './store.js';
import type { VmmDriver } from './vmm.js';

/** A refusal the user can act on (unknown id, wrong state). The CLI prints the message and exits 1. */
export class VmManagerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'VmManagerError';
  }
}

export interface VmManagerOptions {
  store: JsonFileStore;
  /** Injected so tests pass a CaptureRecorder; a real host passes the process-wide `getRecorder()`. */
  recorder: Recorder;
  vmm: VmmDriver;
  /** The clock stamped on records and ledger entries. Demos pass a simulated one. */
  now?: () => Date;
  /** How long a polite VMM shutdown may take before the VM is marked `error`. Default 3 s. */
  stopTimeoutMs?: number;
}

export interface CreateVmSpec {
  id?: string;
  shape: Shape;
  hypervisor: string;
}

export interface ReconcileResult {
  baselines: number;
  crashed: string[];
}

const ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

function newId(prefix: string): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}

function checkId(id: string, what: string): string {
  if (!ID_RE.test(id)) throw new VmManagerError(`${what} id ${JSON.stringify(id)} must be 1-64 letters, digits, ".", "_" or "-"`);
  return id;
}

function getVm(data: StoreData, id: string): VmRecord {
  const vm = data.vms[id];
  if (!vm) throw new VmManagerError(`no VM ${JSON.stringify(id)}`);
  return vm;
}

function getSnapshot(data: StoreData, id: string): SnapshotRecord {
  const snap = data.snapshots[id];
  if (!snap) throw new VmManagerError(`no snapshot ${JSON.stringify(id)}`);
  return snap;
}

/**
 * A small VM/snapshot manager that records billable lifecycle events the way a real one must:
 * every entry is staged inside the store update and published only after it committed (outside the
 * lock), and only by the call that actually made the change. The six emit sites:
 *
 *   vm.compute.start   start / clone / restore (reason boot, restart, clone, restore)
 *   vm.compute.stop    stop / rm / restore, and any command that proves a "running" VMM dead (stop-crash)
 *   vm.storage.start   create / clone / restore
 *   vm.storage.stop    rm / restore (the old disk is replaced)
 *   snap.storage.start snapshot create
 *   snap.storage.stop  snapshot rm
 *
 * plus baselines (`*.running`) from reconcile.
 */
export class VmManager {
  private readonly store: JsonFileStore;
  private readonly recorder: Recorder;
  private readonly vmm: VmmDriver;
  private readonly now: () => Date;
  private readonly stopTimeoutMs: number;

  constructor(options: VmManagerOptions) {
    this.store = options.store;
    this.recorder = options.recorder;
    this.vmm = options.vmm;
    this.now = options.now ?? (() => new Date());
    this.stopTimeoutMs = options.stopTimeoutMs ?? 3_000;
  }

  list(): StoreData {
    return this.store.read();
  }

  /** Stage-then-publish around one store update: the closure may be retried, so it begins a fresh stage. */
  private update<T>(mutate: (data: StoreData, stage: EmitStage) => T): Promise<T> {
    return emitAfterCommit(this.recorder, (stage) =>
      this.store.update((data) => {
        stage.begin();
        return mutate(data, stage);
      }),
    );
  }

  private alive(vm: VmRecord): boolean {
    return vm.pid !== null && this.vmm.isAlive(vm.pid);
  }

  /**
   * Closes an open compute interval whose VMM is proven dead. Called only after `alive()` said no:
   * a VM in `error` whose VMM may still run keeps its interval (and keeps being billed).
   */
  private closeStale(vm: VmRecord, at: Date, stage: EmitStage): void {
    stage.add(vmEntry(KINDS.VM_COMPUTE_STOP, REASONS.STOP_CRASH, vm, at));
    vm.stopped_at = at.toISOString();
    vm.state = 'stopped';
    vm.pid = null;
  }

  /** Opens a compute interval: boot the first time, restart after; clone and restore name their source. */
  private openCompute(vm: VmRecord, pid: number, at: Date, stage: EmitStage, from?: { reason: Reason; snapshotId: string }): void {
    const reason = from?.reason ?? (vm.first_booted ? REASONS.RESTART : REASONS.BOOT);
    stage.add(vmEntry(KINDS.VM_COMPUTE_START, reason, vm, at, from?.snapshotId));
    vm.state = 'running';
    vm.pid = pid;
    vm.first_booted = true;
    vm.started_at = at.toISOString();
    vm.stopped_at = null;
  }

  async create(spec: CreateVmSpec): Promise<VmRecord> {
    const id = checkId(spec.id ?? newId('vm'), 'VM');
    const at = this.now();
    return this.update((data, stage) => {
      if (data.vms[id]) throw new VmManagerError(`VM ${id} already exists`);
      const vm: VmRecord = {
        id,
        state: 'created',
        shape: { ...spec.shape },
        hypervisor: spec.hypervisor,
        pid: null,
        first_booted: false,
        created_at: at.toISOString(),
        started_at: null,
        stopped_at: null,
        source_snapshot_id: null,
      };
      data.vms[id] = vm;
      stage.add(vmEntry(KINDS.VM_STORAGE_START, REASONS.BOOT, vm, at));
      return structuredClone(vm);
    });
  }

  /** Boots (first start) or restarts a VM. A stale "running" record whose VMM died is closed as a crash first. */
  async start(id: string): Promise<VmRecord> {
    const at = this.now();
    // Prepare: the only point before launching where we can prove an old VMM is gone.
    await this.update((data, stage) => {
      const vm = getVm(data, id);
      if (this.alive(vm)) throw new VmManagerError(`VM ${id} is already ${vm.state === 'error' ? 'in error with its VMM still alive (stop --force it)' : 'running'}`);
      if (hasOpenComputeInterval(vm)) this.closeStale(vm, at, stage);
    });
    const pid = await this.launchOrMarkError(id);
    let outcome: VmRecord | 'gone' | 'lost';
    try {
      outcome = await this.update((data, stage): VmRecord | 'gone' | 'lost' => {
        const vm = data.vms[id];
        if (!vm) return 'gone';
        if (hasOpenComputeInterval(vm)) {
          // Another start won the race: keep its interval, discard our VMM.
          if (vm.pid !== pid && this.alive(vm)) return 'lost';
          this.closeStale(vm, at, stage);
        }
        this.openCompute(vm, pid, at, stage);
        return structuredClone(vm);
      });
    } catch (err) {
      // Nothing was recorded, so nothing may keep running.
      await this.vmm.shutdown(pid, { force: true });
      throw err;
    }
    if (typeof outcome === 'string') {
      await this.vmm.shutdown(pid, { force: true });
      throw new VmManagerError(outcome === 'gone' ? `VM ${id} was removed while it was starting` : `VM ${id} was started by another process`);
    }
    return outcome;
  }

  private async launchOrMarkError(id: string): Promise<number> {
    try {
      return await this.vmm.launch(id);
    } catch (err) {
      // No interval was opened, so there is nothing to close; the record only says something went wrong.
      await this.store.update((data) => {
        const vm = data.vms[id];
        if (vm && !hasOpenComputeInterval(vm)) vm.state = 'error';
      });
      throw new VmManagerError(`VM ${id}: the VMM failed to start: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  /**
   * Shuts the VMM down and closes the compute interval. If the VMM does not exit, the VM goes to
   * `error` and the interval stays open: we cannot prove it stopped, so it is still billed until a
   * later command proves it dead. Returns the record, and whether this call closed the interval.
   */
  async stop(id: string, options: { force?: boolean } = {}): Promise<{ vm: VmRecord; closed: boolean }> {
    const at = this.now();
    const before = getVm(this.store.read(), id);
    const pid = before.pid;
    let reason: Reason = REASONS.STOP_USER;
    if (pid !== null && this.vmm.isAlive(pid)) {
      const gone = await this.vmm.shutdown(pid, { force: options.force ?? false, timeoutMs: this.stopTimeoutMs });
      if (!gone) {
        await this.store.update((data) => {
          const vm = data.vms[id];
          // Mark error, leave stopped_at null: the interval stays open.
          if (vm && vm.pid === pid) vm.state = 'error';
        });
        throw new VmManagerError(`VM ${id}: the VMM (pid ${pid}) did not exit; the VM is now in error and still billed. Retry with --force.`);
      }
    } else {
      // It was dead before we asked: whatever is still open ended in a crash.
      reason = REASONS.STOP_CRASH;
    }
    let closed = false;
    const vm = await this.update((data, stage) => {
      closed = false;
      const vm = getVm(data, id);
      // Only close the incarnation we stopped; a concurrent start owns whatever it opened.
      if (vm.pid === pid || vm.pid === null) {
        if (hasOpenComputeInterval(vm)) {
          stage.add(vmEntry(KINDS.VM_COMPUTE_STOP, reason, vm, at));
          vm.stopped_at = at.toISOString();
          closed = true;
        }
        if (vm.state !== 'created') vm.state = 'stopped';
        vm.pid = null;
      }
      return structuredClone(vm);
    });
    return { vm, closed };
  }

  /**
   * Removes a VM: closes its compute interval (vm-rm if we stopped it, stop-crash if it was already
   * dead) and its storage interval. `removed` is false when another process removed it first; then
   * this call records nothing.
   */
  async remove(id: string, options: { force?: boolean } = {}): Promise<{ removed: boolean }> {
    const at = this.now();
    const before = getVm(this.store.read(), id);
    const pid = before.pid;
    let reason: Reason = REASONS.STOP_CRASH;
    if (pid !== null && this.vmm.isAlive(pid)) {
      if (!options.force) throw new VmManagerError(`VM ${id} is ${before.state}; stop it first or use --force`);
      if (!(await this.vmm.shutdown(pid, { force: true, timeoutMs: this.stopTimeoutMs }))) {
        throw new VmManagerError(`VM ${id}: the VMM (pid ${pid}) survived SIGKILL; nothing was changed`);
      }
      reason = REASONS.VM_RM;
    }
    return this.update((data, stage) => {
      const vm = data.vms[id];
      if (!vm) return { removed: false };
      if (vm.pid !== pid && this.alive(vm)) throw new VmManagerError(`VM ${id} was started by another process meanwhile; nothing was removed`);
      if (hasOpenComputeInterval(vm)) stage.add(vmEntry(KINDS.VM_COMPUTE_STOP, vm.pid === pid ? reason : REASONS.STOP_CRASH, vm, at));
      stage.add(vmEntry(KINDS.VM_STORAGE_STOP, REASONS.VM_RM, vm, at));
      delete data.vms[id];
      return { removed: true };
    });
  }

  async createSnapshot(vmId: string, options: { id?: string; size?: number } = {}): Promise<SnapshotRecord> {
    const id = checkId(options.id ?? newId('snap'), 'snapshot');
    const at = this.now();
    return this.update((data, stage) => {
      const vm = getVm(data, vmId);
      if (data.snapshots[id]) throw new VmManagerError(`snapshot ${id} already exists`);
      const snap: SnapshotRecord = {
        id,
        vm_id: vm.id,
        size: options.size ?? vm.shape.storage_bytes,
        created_at: at.toISOString(),
        vm_shape: { ...vm.shape },
        hypervisor: vm.hypervisor,
      };
      data.snapshots[id] = snap;
      stage.add(snapEntry(KINDS.SNAP_STORAGE_START, REASONS.BOOT, snap, at));
      return structuredClone(snap);
    });
  }

  /**
   * Deletes a snapshot. Idempotent: deleting one that is gone succeeds with `removed: false` and
   * records nothing. Two processes racing to delete the same one are serialized by the store lock;
   * only the one whose update removed the record emits the stop.
   */
  async removeSnapshot(id: string): Promise<{ removed: boolean }> {
    const at = this.now();
    return this.update((data, stage) => {
      const snap = data.snapshots[id];
      if (!snap) return { removed: false };
      delete data.snapshots[id];
      stage.add(snapEntry(KINDS.SNAP_STORAGE_STOP, REASONS.SNAP_RM, snap, at));
      return { removed: true };
    });
  }

  /** A new VM from a snapshot, booted: storage and compute open together, both carrying the source. */
  async clone(snapshotId: string, options: { id?: string } = {}): Promise<VmRecord> {
    const id = checkId(options.id ?? newId('vm'), 'VM');
    const at = this.now();
    const data = this.store.read();
    getSnapshot(data, snapshotId);
    if (data.vms[id]) throw new VmManagerError(`VM ${id} already exists`);
    const pid = await this.vmm.launch(id);
    try {
      return await this.update((data, stage) => {
        const snap = getSnapshot(data, snapshotId);
        if (data.vms[id]) throw new VmManagerError(`VM ${id} already exists`);
        const vm: VmRecord = {
          id,
          state: 'created',
          shape: { ...snap.vm_shape },
          hypervisor: snap.hypervisor,
          pid: null,
          first_booted: false,
          created_at: at.toISOString(),
          started_at: null,
          stopped_at: null,
          source_snapshot_id: snap.id,
        };
        data.vms[id] = vm;
        stage.add(vmEntry(KINDS.VM_STORAGE_START, REASONS.CLONE, vm, at, snap.id));
        this.openCompute(vm, pid, at, stage, { reason: REASONS.CLONE, snapshotId: snap.id });
        return structuredClone(vm);
      });
    } catch (err) {
      await this.vmm.shutdown(pid, { force: true });
      throw err;
    }
  }

  /**
   * Rolls a VM back to one of its snapshots: the running VMM is stopped (its interval closed), the disk
   * is replaced (storage stop + start) and the VM boots from the snapshot. One timestamp for all.
   */
  async restore(vmId: string, snapshotId: string): Promise<VmRecord> {
    const at = this.now();
    const data = this.store.read();
    const before = getVm(data, vmId);
    const snap0 = getSnapshot(data, snapshotId);
    if (snap0.vm_id !== vmId) throw new VmManagerError(`snapshot ${snapshotId} belongs to VM ${snap0.vm_id}, not ${vmId} (use clone)`);
    const oldPid = before.pid;
    let reason: Reason = REASONS.STOP_CRASH;
    if (oldPid !== null && this.vmm.isAlive(oldPid)) {
      if (!(await this.vmm.shutdown(oldPid, { timeoutMs: this.stopTimeoutMs }))) {
        throw new VmManagerError(`VM ${vmId}: the VMM (pid ${oldPid}) did not exit; nothing was restored. Stop it with --force first.`);
      }
      reason = REASONS.STOP_USER;
    }
    // Close compute first and flip to stopped, so a failure below cannot leave a dangling interval.
    await this.update((data, stage) => {
      const vm = getVm(data, vmId);
      if (vm.pid !== oldPid && this.alive(vm)) throw new VmManagerError(`VM ${vmId} was started by another process meanwhile; nothing was restored`);
      if (hasOpenComputeInterval(vm)) {
        stage.add(vmEntry(KINDS.VM_COMPUTE_STOP, vm.pid === oldPid ? reason : REASONS.STOP_CRASH, vm, at));
        vm.stopped_at = at.toISOString();
      }
      if (vm.state !== 'created') vm.state = 'stopped';
      vm.pid = null;
    });
    const pid = await this.launchOrMarkError(vmId);
    try {
      return await this.update((data, stage) => {
        const vm = getVm(data, vmId);
        const snap = getSnapshot(data, snapshotId);
        if (hasOpenComputeInterval(vm)) throw new VmManagerError(`VM ${vmId} was started by another process meanwhile; nothing was restored`);
        stage.add(vmEntry(KINDS.VM_STORAGE_STOP, REASONS.RESTORE, vm, at));
        vm.source_snapshot_id = snap.id;
        vm.shape = { ...snap.vm_shape };
        stage.add(vmEntry(KINDS.VM_STORAGE_START, REASONS.RESTORE, vm, at, snap.id));
        this.openCompute(vm, pid, at, stage, { reason: REASONS.RESTORE, snapshotId: snap.id });
        return structuredClone(vm);
      });
    } catch (err) {
      await this.vmm.shutdown(pid, { force: true });
      throw err;
    }
  }

  /**
   * Baselines: one `*.running` entry for every VM that runs, every VM disk and every snapshot, so a
   * consumer can rebuild the state without the history. A "running" VM whose VMM is dead is closed
   * as a crash instead. Run it periodically (`reconcile --every`).
   */
  async reconcile(): Promise<ReconcileResult> {
    const at = this.now();
    return this.update((data, stage) => {
      const result: ReconcileResult = { baselines: 0, crashed: [] };
      for (const vm of Object.values(data.vms)) {
        if (hasOpenComputeInterval(vm)) {
          if (this.alive(vm)) {
            stage.add(vmEntry(KINDS.VM_COMPUTE_RUNNING, REASONS.BASELINE, vm, at, vm.source_snapshot_id));
            result.baselines++;
          } else {
            this.closeStale(vm, at, stage);
            result.crashed.push(vm.id);
          }
        }
        stage.add(vmEntry(KINDS.VM_STORAGE_RUNNING, REASONS.BASELINE, vm, at, vm.source_snapshot_id));
        result.baselines++;
      }
      for (const snap of Object.values(data.snapshots)) {
        stage.add(snapEntry(KINDS.SNAP_STORAGE_RUNNING, REASONS.BASELINE, snap, at));
        result.baselines++;
      }
      return result;
    });
  }

  /** Kills a VM's VMM behind the manager's back (what a crash looks like). Records nothing. */
  async crash(id: string): Promise<number | null> {
    const vm = getVm(this.store.read(), id);
    if (vm.pid !== null) await this.vmm.crash(vm.pid);
    return vm.pid;
  }
}
