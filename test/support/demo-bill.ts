/**
 * The bill the demo's simulated day should produce, worked out from the script alone (examples/demo-plan.ts)
 * with a deliberately naive model of what each command means for billing. It shares no code with the
 * manager, the recorder or the consumer, so agreement with `metering usage` is evidence, not an echo.
 */
import { BARRIERS, LANES, NODES, minuteOfDay } from '../../examples/demo-plan.js';

const UNITS: Record<string, number> = { GiB: 1024 ** 3, MiB: 1024 ** 2 };
const size = (s: string): number => {
  const m = /^(\d+)(GiB|MiB)$/.exec(s);
  if (!m) throw new Error(`size ${s}`);
  return Number(m[1]) * UNITS[m[2]!]!;
};

interface Shape {
  cpu: number;
  mem: number;
  disk: number;
}

export interface Totals {
  /** Sum over compute intervals of cpu × ms. */
  cpuMs: bigint;
  /** Sum over compute intervals of mem_bytes × ms. */
  memByteMs: bigint;
  /** Sum over VM disk intervals of storage_bytes × ms. */
  vmStorageByteMs: bigint;
  /** Sum over snapshot intervals of storage_bytes × ms. */
  snapStorageByteMs: bigint;
}

interface Vm {
  shape: Shape;
  computeSince: number | null;
  storageSince: number;
  alive: boolean;
  stuck: boolean;
}

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i === -1 ? undefined : args[i + 1];
}

const zero = (): Totals => ({ cpuMs: 0n, memByteMs: 0n, vmStorageByteMs: 0n, snapStorageByteMs: 0n });

/** Expected totals for the day [00:00, 24:00) per node and overall; what still runs at midnight counts up to 24:00. */
export function expectedBill(): { total: Totals; byNode: Map<string, Totals> } {
  const END = 24 * 60;
  const ms = (from: number, to: number): bigint => BigInt((to - from) * 60_000);
  const byNode = new Map<string, Totals>();
  for (const node of NODES) {
    const t = zero();
    byNode.set(node, t);
    const vms = new Map<string, Vm>();
    const snaps = new Map<string, { size: number; since: number; vmShape: Shape }>();
    const closeCompute = (vm: Vm, at: number): void => {
      if (vm.computeSince === null) return;
      t.cpuMs += BigInt(vm.shape.cpu) * ms(vm.computeSince, at);
      t.memByteMs += BigInt(vm.shape.mem) * ms(vm.computeSince, at);
      vm.computeSince = null;
    };
    const closeStorage = (vm: Vm, at: number): void => {
      t.vmStorageByteMs += BigInt(vm.shape.disk) * ms(vm.storageSince, at);
    };
    // Steps before a barrier, then the barrier's reconcile, then the rest: the order the demo runs them in.
    const events = LANES.filter((l) => l.node === node)
      .flatMap((l) => l.steps.map((s) => ({ at: minuteOfDay(s.at), order: 1, commands: s.run.map((c) => c.args) })))
      .concat(BARRIERS.map((b) => ({ at: minuteOfDay(b), order: 0, commands: [['reconcile']] })))
      .sort((a, b) => a.at - b.at || a.order - b.order);
    for (const { at, commands } of events) {
      for (const args of commands) {
        const [verb, a1, a2] = args;
        switch (verb === 'snapshot' ? `snapshot ${a1}` : verb) {
          case 'create': {
            const vm: Vm = { shape: { cpu: Number(flag(args, '--cpu')), mem: size(flag(args, '--mem')!), disk: size(flag(args, '--disk')!) }, computeSince: null, storageSince: at, alive: false, stuck: false };
            if (args.includes('--start')) Object.assign(vm, { computeSince: at, alive: true });
            vms.set(a1!, vm);
            break;
          }
          case 'start': {
            const vm = vms.get(a1!)!;
            if (!vm.alive) closeCompute(vm, at);
            Object.assign(vm, { computeSince: at, alive: true });
            break;
          }
          case 'stop': {
            const vm = vms.get(a1!)!;
            if (vm.stuck && !args.includes('--force')) break;
            closeCompute(vm, at);
            vm.alive = false;
            break;
          }
          case 'rm': {
            const vm = vms.get(a1!)!;
            closeCompute(vm, at);
            closeStorage(vm, at);
            vms.delete(a1!);
            break;
          }
          case 'crash':
            vms.get(a1!)!.alive = false;
            break;
          case 'hang':
            vms.get(a1!)!.stuck = true;
            break;
          case 'reconcile':
            for (const vm of vms.values()) if (!vm.alive) closeCompute(vm, at);
            break;
          case 'snapshot create':
            snaps.set(flag(args, '--id')!, { size: size(flag(args, '--size')!), since: at, vmShape: vms.get(a2!)!.shape });
            break;
          case 'snapshot rm': {
            const snap = snaps.get(a2!);
            if (!snap) break; // the loser of the delete race
            t.snapStorageByteMs += BigInt(snap.size) * ms(snap.since, at);
            snaps.delete(a2!);
            break;
          }
          case 'clone': {
            const snap = snaps.get(a1!)!;
            vms.set(flag(args, '--id')!, { shape: { ...snap.vmShape }, computeSince: at, storageSince: at, alive: true, stuck: false });
            break;
          }
          case 'restore': {
            const vm = vms.get(a1!)!;
            closeCompute(vm, at);
            closeStorage(vm, at);
            Object.assign(vm, { shape: { ...snaps.get(a2!)!.vmShape }, computeSince: at, storageSince: at, alive: true });
            break;
          }
          default:
            throw new Error(`the bill model does not know ${args.join(' ')}`);
        }
      }
    }
    for (const vm of vms.values()) {
      closeCompute(vm, END);
      closeStorage(vm, END);
    }
    for (const snap of snaps.values()) t.snapStorageByteMs += BigInt(snap.size) * ms(snap.since, END);
  }
  const total = zero();
  for (const t of byNode.values()) for (const k of Object.keys(total) as (keyof Totals)[]) total[k] += t[k];
  return { total, byNode };
}
