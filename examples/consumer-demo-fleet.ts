// Demo input for the consumer: records a small fleet's day into three node ledgers with the real FileRecorder.
// Usage: node --import tsx examples/consumer-demo-fleet.ts <root-dir>   (then ship each <root-dir>/<node>)
import { FileRecorder, KINDS, REASONS } from 'metering-ledger';
const GiB = 1024 ** 3;
const day = Date.UTC(2026, 10, 23, 0, 0, 0);
const t = (h: number, m = 0) => new Date(day + h * 3_600_000 + m * 60_000);
const root = process.argv[2]!;
const nodes = ['node-a', 'node-b', 'node-c'];
for (const [n, node] of nodes.entries()) {
  let clock = day;
  const rec = new FileRecorder({ dir: `${root}/${node}`, node, now: () => new Date(clock) });
  for (let v = 0; v < 4; v++) {
    const vm = `vm-${node.slice(-1)}${v}`;
    const cpu = [1, 2, 4, 8][v]!;
    const shape = { cpu, mem_bytes: cpu * 2 * GiB, storage_bytes: (10 + 10 * v) * GiB };
    const hv = v % 2 ? 'firecracker' : 'cloud-hypervisor';
    const startH = n + v * 2;
    rec.emit({ kind: KINDS.VM_STORAGE_START, reason: REASONS.BOOT, vm_id: vm, hypervisor: hv, shape, emitted_at: t(startH, 7) });
    rec.emit({ kind: KINDS.VM_COMPUTE_START, reason: REASONS.BOOT, vm_id: vm, hypervisor: hv, shape, emitted_at: t(startH, 7) });
    rec.emit({ kind: KINDS.VM_COMPUTE_START, reason: REASONS.BOOT, vm_id: vm, hypervisor: hv, shape, emitted_at: t(startH, 9) }); // a duplicate start
    if (v < 3) rec.emit({ kind: KINDS.VM_COMPUTE_STOP, reason: REASONS.STOP_USER, vm_id: vm, hypervisor: hv, shape, emitted_at: t(startH + 3 + v, 41) });
    if (v === 1) {
      rec.emit({ kind: KINDS.SNAP_STORAGE_START, reason: REASONS.CLONE, snapshot_id: `snap-${vm}`, vm_id: vm, shape: { cpu: 0, mem_bytes: 0, storage_bytes: 3 * GiB }, emitted_at: t(startH + 1, 30) });
      rec.emit({ kind: KINDS.SNAP_STORAGE_STOP, reason: REASONS.SNAP_RM, snapshot_id: `snap-${vm}`, vm_id: vm, shape: { cpu: 0, mem_bytes: 0, storage_bytes: 3 * GiB }, emitted_at: t(startH + 9, 0) });
    }
  }
  rec.emit({ kind: KINDS.VM_COMPUTE_STOP, reason: REASONS.STOP_USER, vm_id: `vm-never-started-${node}`, shape: { cpu: 1, mem_bytes: GiB, storage_bytes: 0 }, emitted_at: t(12) }); // orphan
  clock = day + 20 * 3_600_000;
  rec.close?.();
}
