/**
 * Realistic ledger workloads for benchmarks: a fleet of VMs that start, stop, get snapshotted and
 * report baselines, with a simulated clock so a day of events is written in seconds. Written with
 * the real FileRecorder, so the bytes are exactly what a node produces.
 */
import { FileRecorder, KINDS, REASONS, type EntryInput } from 'metering-ledger';

export interface WorkloadOptions {
  dir: string;
  node: string;
  /** Number of entries to write. */
  entries: number;
  /** Distinct VMs cycling through start/stop. */
  vms?: number;
  /** Simulated start time (ms) and spacing between entries (ms). */
  startMs?: number;
  stepMs?: number;
  maxSegmentBytes?: number;
  /**
   * Delete the oldest snapshot (snap.storage.stop) once more than this many exist, so the set of
   * open resources stays bounded however long the run (default: snapshots are never deleted).
   */
  keepSnapshots?: number;
}

const GiB = 1024 ** 3;

/** Writes `entries` lifecycle events; returns the simulated time of the last one. */
export async function writeWorkload(options: WorkloadOptions): Promise<number> {
  const vms = options.vms ?? 1000;
  let t = options.startMs ?? Date.UTC(2026, 10, 1);
  const step = options.stepMs ?? 50;
  const rec = new FileRecorder({ dir: options.dir, node: options.node, maxSegmentBytes: options.maxSegmentBytes ?? 64 * 1024 * 1024, now: () => new Date(t) });
  const running = new Uint8Array(vms);
  const snapshots: { id: string; vm_id: string; storage_bytes: number }[] = [];
  let oldest = 0; // index of the oldest live snapshot in `snapshots` (a queue without shifting)
  for (let i = 0; i < options.entries; i++) {
    t += step;
    const v = (i * 7919) % vms; // a fixed pseudo-random walk over the fleet
    const vm_id = `vm-${options.node}-${v}`;
    const shape = { cpu: 1 + (v % 8), mem_bytes: (1 + (v % 16)) * GiB, storage_bytes: (10 + (v % 90)) * GiB };
    let entry: EntryInput;
    if (i % 50 === 49) {
      entry = { kind: KINDS.SNAP_STORAGE_START, reason: REASONS.BOOT, snapshot_id: `snap-${options.node}-${i}`, vm_id, shape: { cpu: 0, mem_bytes: 0, storage_bytes: shape.storage_bytes } };
      if (options.keepSnapshots !== undefined) snapshots.push({ id: `snap-${options.node}-${i}`, vm_id, storage_bytes: shape.storage_bytes });
    } else if (options.keepSnapshots !== undefined && i % 50 === 24 && snapshots.length - oldest > options.keepSnapshots) {
      const s = snapshots[oldest]!;
      snapshots[oldest++] = undefined as never;
      entry = { kind: KINDS.SNAP_STORAGE_STOP, reason: REASONS.SNAP_RM, snapshot_id: s.id, vm_id: s.vm_id, shape: { cpu: 0, mem_bytes: 0, storage_bytes: s.storage_bytes } };
    } else if (running[v] && i % 10 === 3) {
      entry = { kind: KINDS.VM_COMPUTE_RUNNING, reason: REASONS.BASELINE, vm_id, hypervisor: 'cloud-hypervisor', shape };
    } else if (running[v]) {
      entry = { kind: KINDS.VM_COMPUTE_STOP, reason: REASONS.STOP_USER, vm_id, hypervisor: 'cloud-hypervisor', shape };
      running[v] = 0;
    } else {
      entry = { kind: KINDS.VM_COMPUTE_START, reason: REASONS.RESTART, vm_id, hypervisor: 'cloud-hypervisor', shape };
      running[v] = 1;
    }
    rec.emit(entry);
    // Yield now and then so a benchmark's timers (progress, RSS sampling) keep running.
    if (i % 100_000 === 99_999) await new Promise((r) => setImmediate(r));
  }
  await rec.close();
  return t;
}
