/** The vm-manager command line (commands, flags, help); cli.ts runs it. */
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Command, InvalidArgumentError, Option } from 'commander';
import { closeRecorder, getRecorder, parseTimestamp, resolveLedgerDir } from 'metering-ledger';
import { VmManager, VmManagerError } from './manager.js';
import type { StoreData } from './records.js';
import { JsonFileStore } from './store.js';
import { ProcessVmm, SimulatedVmm, type VmmDriver } from './vmm.js';

interface GlobalOptions {
  store: string;
  ledgerDir?: string;
  node?: string;
  at?: Date;
  vmm: 'process' | 'simulated';
}

const SIZE_UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, kib: 1024, m: 1024 ** 2, mib: 1024 ** 2, g: 1024 ** 3, gib: 1024 ** 3, t: 1024 ** 4, tib: 1024 ** 4 };

function parseSize(text: string): number {
  const m = /^(\d+)\s*([a-z]*)$/i.exec(text.trim());
  const unit = m ? SIZE_UNITS[m[2]!.toLowerCase()] : undefined;
  const n = m && unit !== undefined ? Number(m[1]) * unit : NaN;
  if (!Number.isSafeInteger(n)) throw new InvalidArgumentError('expected a size such as 4GiB, 512MiB or a number of bytes');
  return n;
}

function parseCount(text: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 0) throw new InvalidArgumentError('expected a whole number');
  return n;
}

function parseAt(text: string): Date {
  const ms = parseTimestamp(text);
  if (typeof ms === 'string') throw new InvalidArgumentError(`${ms} (e.g. 2026-11-23T09:30:00Z)`);
  return new Date(ms);
}

function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(text.trim());
  if (!m) throw new InvalidArgumentError('expected a duration such as 30s, 5m or 1h');
  const ms = Number(m[1]) * { ms: 1, s: 1e3, m: 60e3, h: 3600e3 }[m[2] as 'ms' | 's' | 'm' | 'h'];
  if (ms < 1000) throw new InvalidArgumentError('must be at least 1s');
  return ms;
}

const GiB = 1024 ** 3;
const gib = (n: number): string => `${(n / GiB).toFixed(n % GiB === 0 ? 0 : 1)}GiB`;

function printList(data: StoreData): void {
  const vms = Object.values(data.vms).sort((a, b) => a.id.localeCompare(b.id));
  const snaps = Object.values(data.snapshots).sort((a, b) => a.id.localeCompare(b.id));
  console.log(`${'VM'.padEnd(14)} ${'STATE'.padEnd(8)} ${'SHAPE'.padEnd(20)} ${'HYPERVISOR'.padEnd(17)} ${'PID'.padEnd(9)} SOURCE`);
  for (const vm of vms) {
    const shape = `${vm.shape.cpu}c/${gib(vm.shape.mem_bytes)}/${gib(vm.shape.storage_bytes)}`;
    console.log(`${vm.id.padEnd(14)} ${vm.state.padEnd(8)} ${shape.padEnd(20)} ${vm.hypervisor.padEnd(17)} ${String(vm.pid ?? '-').padEnd(9)} ${vm.source_snapshot_id ?? '-'}`);
  }
  console.log(`\n${'SNAPSHOT'.padEnd(14)} ${'VM'.padEnd(14)} ${'SIZE'.padEnd(8)} CREATED`);
  for (const s of snaps) console.log(`${s.id.padEnd(14)} ${s.vm_id.padEnd(14)} ${gib(s.size).padEnd(8)} ${s.created_at}`);
}

/** Builds the manager from the global options; `run` gets it and the recorder is flushed and closed after. */
async function withManager(cmd: Command, run: (manager: VmManager, g: GlobalOptions) => Promise<void>): Promise<void> {
  const g = cmd.optsWithGlobals<GlobalOptions>();
  const store = new JsonFileStore(g.store);
  const vmm: VmmDriver = g.vmm === 'simulated' ? new SimulatedVmm(path.join(path.dirname(store.file), 'vmm-sim')) : new ProcessVmm();
  const at = g.at;
  const now = at ? () => new Date(at.getTime()) : () => new Date();
  // One process-wide recorder, as a real manager holds: every code path emits through it.
  const recorder = getRecorder({ dir: g.ledgerDir ? path.resolve(g.ledgerDir) : resolveLedgerDir(), node: g.node, now });
  try {
    await run(new VmManager({ store, recorder, vmm, now }), g);
  } finally {
    await closeRecorder();
  }
}

function simulatedOnly(g: GlobalOptions, what: string): SimulatedVmm {
  if (g.vmm !== 'simulated') throw new VmManagerError(`${what} needs --vmm simulated`);
  return new SimulatedVmm(path.join(path.dirname(path.resolve(g.store)), 'vmm-sim'));
}

export function buildProgram(): Command {
  const program = new Command()
    .name('vm-manager')
    .description('Example VM/snapshot manager that records billable lifecycle events with metering-ledger.')
    .option('--store <file>', 'JSON store of VM and snapshot records', process.env.VM_MANAGER_STORE ?? '.vm-manager/store.json')
    .option('--ledger-dir <dir>', 'metering ledger directory (default: $METERING_DIR/metering, else /var/lib/metering-ledger/metering)')
    .option('--node <id>', 'node id stamped on ledger entries (default: the hostname)')
    .option('--at <time>', 'simulated clock: RFC 3339 time stamped on records and ledger entries (demos)', parseAt)
    .addOption(new Option('--vmm <driver>', 'what runs a VM: a real detached process, or a simulated one (marker files; nothing keeps running)').choices(['process', 'simulated']).default('process'))
    .showHelpAfterError();

  program
    .command('create')
    .description('create a VM (records its disk: vm.storage.start)')
    .argument('[id]', 'VM id (default: generated)')
    .option('--cpu <n>', 'vCPUs', parseCount, 2)
    .option('--mem <size>', 'memory, e.g. 4GiB', parseSize, 4 * GiB)
    .option('--disk <size>', 'disk, e.g. 20GiB', parseSize, 20 * GiB)
    .option('--hypervisor <name>', 'hypervisor', 'cloud-hypervisor')
    .option('--start', 'boot it right away')
    .action(async (id: string | undefined, o: { cpu: number; mem: number; disk: number; hypervisor: string; start?: boolean }, cmd: Command) =>
      withManager(cmd, async (m) => {
        const vm = await m.create({ id, shape: { cpu: o.cpu, mem_bytes: o.mem, storage_bytes: o.disk }, hypervisor: o.hypervisor });
        console.log(`created ${vm.id}`);
        if (o.start) console.log(`started ${vm.id} (pid ${(await m.start(vm.id)).pid})`);
      }),
    );

  program
    .command('start')
    .description('boot or restart a VM (vm.compute.start); closes a crashed interval first (stop-crash)')
    .argument('<id>', 'VM id')
    .action(async (id: string, _o: unknown, cmd: Command) =>
      withManager(cmd, async (m) => {
        const vm = await m.start(id);
        console.log(`started ${vm.id} (pid ${vm.pid})`);
      }),
    );

  program
    .command('stop')
    .description('stop a VM (vm.compute.stop); a VMM that does not exit leaves the VM in error, still billed')
    .argument('<id>', 'VM id')
    .option('--force', 'SIGKILL the VMM instead of asking it to exit')
    .action(async (id: string, o: { force?: boolean }, cmd: Command) =>
      withManager(cmd, async (m) => {
        const { closed } = await m.stop(id, { force: o.force });
        console.log(closed ? `stopped ${id}` : `${id} was not running; nothing recorded`);
      }),
    );

  program
    .command('rm')
    .description('remove a VM (vm.storage.stop, and vm.compute.stop if it was running)')
    .argument('<id>', 'VM id')
    .option('--force', 'kill the VMM of a running VM')
    .action(async (id: string, o: { force?: boolean }, cmd: Command) =>
      withManager(cmd, async (m) => {
        const { removed } = await m.remove(id, { force: o.force });
        console.log(removed ? `removed ${id}` : `${id} was removed by another process; nothing recorded`);
      }),
    );

  const snapshot = program.command('snapshot').description('snapshots of VM disks');
  snapshot
    .command('create')
    .description('snapshot a VM (snap.storage.start)')
    .argument('<vm>', 'VM id')
    .option('--id <id>', 'snapshot id (default: generated)')
    .option('--size <size>', "bytes it occupies (default: the VM's disk)", parseSize)
    .action(async (vm: string, o: { id?: string; size?: number }, cmd: Command) =>
      withManager(cmd, async (m) => {
        const snap = await m.createSnapshot(vm, o);
        console.log(`created snapshot ${snap.id} of ${vm}`);
      }),
    );
  snapshot
    .command('rm')
    .description('delete a snapshot (snap.storage.stop); idempotent: of two racing deletes only the winner records')
    .argument('<id>', 'snapshot id')
    .action(async (id: string, _o: unknown, cmd: Command) =>
      withManager(cmd, async (m) => {
        const { removed } = await m.removeSnapshot(id);
        console.log(removed ? `removed snapshot ${id}` : `snapshot ${id} is already gone; nothing recorded`);
      }),
    );

  program
    .command('clone')
    .description('boot a new VM from a snapshot (vm.storage.start + vm.compute.start, reason clone)')
    .argument('<snapshot>', 'snapshot id')
    .option('--id <id>', 'new VM id (default: generated)')
    .action(async (snap: string, o: { id?: string }, cmd: Command) =>
      withManager(cmd, async (m) => {
        const vm = await m.clone(snap, o);
        console.log(`cloned ${snap} into ${vm.id} (pid ${vm.pid})`);
      }),
    );

  program
    .command('restore')
    .description("roll a VM back to one of its snapshots and boot it (reason restore)")
    .argument('<vm>', 'VM id')
    .argument('<snapshot>', 'snapshot id')
    .action(async (vm: string, snap: string, _o: unknown, cmd: Command) =>
      withManager(cmd, async (m) => {
        const rec = await m.restore(vm, snap);
        console.log(`restored ${vm} from ${snap} (pid ${rec.pid})`);
      }),
    );

  program
    .command('list')
    .description('list VMs and snapshots')
    .option('--json', 'print the store as JSON')
    .action((o: { json?: boolean }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const data = new JsonFileStore(g.store).read();
      if (o.json) console.log(JSON.stringify(data, null, 2));
      else printList(data);
    });

  program
    .command('reconcile')
    .description('emit baselines (*.running) for everything running or existing; close crashed VMs (stop-crash)')
    .option('--every <duration>', 'keep running and reconcile every DURATION (e.g. 15m) until SIGINT/SIGTERM', parseDuration)
    .action(async (o: { every?: number }, cmd: Command) =>
      withManager(cmd, async (m, g) => {
        if (o.every !== undefined && g.at) throw new VmManagerError('--every uses the real clock; it cannot be combined with --at');
        // A signal ends the wait between rounds, never a round in progress.
        const stopping = new AbortController();
        for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => stopping.abort());
        do {
          const r = await m.reconcile();
          console.log(`reconciled: ${r.baselines} baselines${r.crashed.length ? `, closed crashed ${r.crashed.join(', ')}` : ''}`);
          if (o.every === undefined) break;
          await sleep(o.every, undefined, { signal: stopping.signal }).catch(() => undefined);
        } while (!stopping.signal.aborted);
      }),
    );

  program
    .command('crash')
    .description("simulate a crash: kill a VM's VMM behind the manager's back (records nothing; the next command notices)")
    .argument('<id>', 'VM id')
    .action(async (id: string, _o: unknown, cmd: Command) =>
      withManager(cmd, async (m) => {
        const pid = await m.crash(id);
        console.log(pid === null ? `${id} has no VMM` : `killed the VMM of ${id} (pid ${pid})`);
      }),
    );

  program
    .command('hang')
    .description('simulate a VMM that ignores a polite shutdown (needs --vmm simulated)')
    .argument('<id>', 'VM id')
    .action((id: string, _o: unknown, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const vm = new JsonFileStore(g.store).read().vms[id];
      if (!vm?.pid) throw new VmManagerError(`VM ${id} has no VMM`);
      simulatedOnly(g, 'hang').makeStuck(vm.pid);
      console.log(`the VMM of ${id} (pid ${vm.pid}) now ignores shutdown requests`);
    });

  return program;
}
