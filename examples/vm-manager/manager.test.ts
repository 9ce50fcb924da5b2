import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CaptureRecorder, KINDS, REASONS, type LedgerEntry } from 'metering-ledger';
import { VmManager, VmManagerError } from './manager.js';
import { JsonFileStore } from './store.js';
import { ProcessVmm, SimulatedVmm, type VmmDriver } from './vmm.js';

const GiB = 1024 ** 3;
const SHAPE = { cpu: 2, mem_bytes: 4 * GiB, storage_bytes: 20 * GiB };
const IGNORES_SIGTERM = "process.on('SIGTERM', () => {}); setInterval(() => {}, 1 << 30);";

let dir: string;
let store: JsonFileStore;
let rec: CaptureRecorder;
let clock: Date;
const launched = new Set<number>();

/** The manager as a user's unit test would build it: a real store in a temp dir, a CaptureRecorder injected. */
function manager(vmm: VmmDriver, stopTimeoutMs = 3_000): VmManager {
  return new VmManager({ store, recorder: rec, vmm, now: () => clock, stopTimeoutMs });
}

/** Real processes, remembered so afterEach can kill what a test left running. */
function processVmm(script?: string): ProcessVmm {
  const vmm = new ProcessVmm(script);
  const launch = vmm.launch.bind(vmm);
  vmm.launch = async (id) => {
    const pid = await launch(id);
    launched.add(pid);
    return pid;
  };
  return vmm;
}

function at(hhmm: string): Date {
  clock = new Date(`2026-11-23T${hhmm}:00.000Z`);
  return clock;
}

const brief = (e: LedgerEntry): string => `${e.kind} ${e.reason} ${e.vm_id ?? ''}${e.snapshot_id ? ` ${e.snapshot_id}` : ''}${e.source_snapshot_id ? ` <${e.source_snapshot_id}` : ''}`.trim();

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vm-manager-'));
  store = new JsonFileStore(path.join(dir, 'store.json'));
  rec = new CaptureRecorder({ node: 'node-test' });
  at('08:00');
});

afterEach(() => {
  for (const pid of launched) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  launched.clear();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('emit sites', () => {
  it('create records the disk; start boots, stop closes, the next start is a restart', async () => {
    const m = manager(new SimulatedVmm(path.join(dir, 'sim')));
    await m.create({ id: 'vm-a', shape: SHAPE, hypervisor: 'cloud-hypervisor' });
    at('09:00');
    await m.start('vm-a');
    at('10:00');
    expect((await m.stop('vm-a')).closed).toBe(true);
    at('11:00');
    await m.start('vm-a');
    expect(rec.entries().map(brief)).toEqual([
      'vm.storage.start boot vm-a',
      'vm.compute.start boot vm-a',
      'vm.compute.stop stop-user vm-a',
      'vm.compute.start restart vm-a',
    ]);
    const [storage, boot, stop] = rec.entries();
    expect(storage).toMatchObject({ shape: SHAPE, hypervisor: 'cloud-hypervisor', emitted_at: '2026-11-23T08:00:00.000Z' });
    expect(boot!.emitted_at).toBe('2026-11-23T09:00:00.000Z');
    expect(stop!.emitted_at).toBe('2026-11-23T10:00:00.000Z');
    const vm = m.list().vms['vm-a']!;
    expect(vm).toMatchObject({ state: 'running', first_booted: true, started_at: '2026-11-23T11:00:00.000Z', stopped_at: null });
  });

  it('stop of a VM that is not running records nothing', async () => {
    const m = manager(new SimulatedVmm(path.join(dir, 'sim')));
    await m.create({ id: 'vm-a', shape: SHAPE, hypervisor: 'firecracker' });
    rec.clear();
    expect((await m.stop('vm-a')).closed).toBe(false);
    await m.start('vm-a');
    await m.stop('vm-a');
    expect((await m.stop('vm-a')).closed).toBe(false);
    expect(rec.kinds()).toEqual([KINDS.VM_COMPUTE_START, KINDS.VM_COMPUTE_STOP]);
  });

  it('start of a running VM is refused and records nothing', async () => {
    const m = manager(new SimulatedVmm(path.join(dir, 'sim')));
    await m.create({ id: 'vm-a', shape: SHAPE, hypervisor: 'firecracker' });
    await m.start('vm-a');
    rec.clear();
    await expect(m.start('vm-a')).rejects.toThrow(/already running/);
    expect(rec.entries()).toEqual([]);
  });

  it('rm closes storage (and compute with vm-rm when it had to kill the VMM); rm of a running VM needs --force', async () => {
    const m = manager(new SimulatedVmm(path.join(dir, 'sim')));
    await m.create({ id: 'vm-a', shape: SHAPE, hypervisor: 'cloud-hypervisor' });
    await m.create({ id: 'vm-b', shape: SHAPE, hypervisor: 'cloud-hypervisor' });
    await m.start('vm-b');
    rec.clear();
    at('12:00');
    await expect(m.remove('vm-b')).rejects.toBeInstanceOf(VmManagerError);
    expect(rec.entries()).toEqual([]);
    expect(await m.remove('vm-a')).toEqual({ removed: true });
    expect(await m.remove('vm-b', { force: true })).toEqual({ removed: true });
    expect(rec.entries().map(brief)).toEqual(['vm.storage.stop vm-rm vm-a', 'vm.compute.stop vm-rm vm-b', 'vm.storage.stop vm-rm vm-b']);
    expect(m.list().vms).toEqual({});
  });

  it('snapshots bill their own size as storage only', async () => {
    const m = manager(new SimulatedVmm(path.join(dir, 'sim')));
    await m.create({ id: 'vm-a', shape: SHAPE, hypervisor: 'cloud-hypervisor' });
    rec.clear();
    at('09:30');
    await m.createSnapshot('vm-a', { id: 'snap-1', size: 3 * GiB });
    at('15:00');
    expect(await m.removeSnapshot('snap-1')).toEqual({ removed: true });
    expect(rec.entries().map(brief)).toEqual(['snap.storage.start boot vm-a snap-1', 'snap.storage.stop snap-rm vm-a snap-1']);
    for (const e of rec.entries()) expect(e.shape).toEqual({ cpu: 0, mem_bytes: 0, storage_bytes: 3 * GiB });
    // Deleting it again succeeds and records nothing (the loser of a delete race takes this path).
    expect(await m.removeSnapshot('snap-1')).toEqual({ removed: false });
    expect(rec.entries()).toHaveLength(2);
  });

  it('clone opens storage and compute at one time, both carrying the source snapshot', async () => {
    const m = manager(new SimulatedVmm(path.join(dir, 'sim')));
    await m.create({ id: 'vm-a', shape: SHAPE, hypervisor: 'cloud-hypervisor' });
    await m.createSnapshot('vm-a', { id: 'snap-1' });
    rec.clear();
    at('13:00');
    const clone = await m.clone('snap-1', { id: 'vm-c' });
    expect(clone).toMatchObject({ state: 'running', source_snapshot_id: 'snap-1', shape: SHAPE, first_booted: true });
    expect(rec.entries().map(brief)).toEqual(['vm.storage.start clone vm-c <snap-1', 'vm.compute.start clone vm-c <snap-1']);
    expect(new Set(rec.entries().map((e) => e.emitted_at))).toEqual(new Set(['2026-11-23T13:00:00.000Z']));
    // Its next boot is an ordinary restart, not another clone.
    await m.stop('vm-c');
    rec.clear();
    await m.start('vm-c');
    expect(rec.entries().map(brief)).toEqual(['vm.compute.start restart vm-c']);
  });

  it('restore closes compute, replaces the disk and boots from the snapshot, all at one time', async () => {
    const m = manager(new SimulatedVmm(path.join(dir, 'sim')));
    await m.create({ id: 'vm-a', shape: SHAPE, hypervisor: 'cloud-hypervisor' });
    await m.start('vm-a');
    await m.createSnapshot('vm-a', { id: 'snap-1' });
    await m.createSnapshot('vm-a', { id: 'snap-other' });
    await m.create({ id: 'vm-b', shape: SHAPE, hypervisor: 'cloud-hypervisor' });
    rec.clear();
    at('14:00');
    await expect(m.restore('vm-b', 'snap-1')).rejects.toThrow(/belongs to VM vm-a/);
    expect(rec.entries()).toEqual([]);
    await m.restore('vm-a', 'snap-1');
    expect(rec.entries().map(brief)).toEqual([
      'vm.compute.stop stop-user vm-a',
      'vm.storage.stop restore vm-a',
      'vm.storage.start restore vm-a <snap-1',
      'vm.compute.start restore vm-a <snap-1',
    ]);
    expect(new Set(rec.entries().map((e) => e.emitted_at)).size).toBe(1);
    expect(m.list().vms['vm-a']).toMatchObject({ state: 'running', source_snapshot_id: 'snap-1', stopped_at: null });
  });

  it('reconcile emits baselines for what runs and exists, nothing for what is stopped', async () => {
    const m = manager(new SimulatedVmm(path.join(dir, 'sim')));
    await m.create({ id: 'vm-a', shape: SHAPE, hypervisor: 'cloud-hypervisor' });
    await m.create({ id: 'vm-b', shape: SHAPE, hypervisor: 'firecracker' });
    await m.start('vm-a');
    await m.createSnapshot('vm-b', { id: 'snap-1', size: GiB });
    rec.clear();
    at('18:00');
    expect(await m.reconcile()).toEqual({ baselines: 4, crashed: [] });
    expect(rec.entries().map(brief).sort()).toEqual([
      'snap.storage.running baseline vm-b snap-1',
      'vm.compute.running baseline vm-a',
      'vm.storage.running baseline vm-a',
      'vm.storage.running baseline vm-b',
    ]);
    for (const e of rec.entries()) expect(e.emitted_at).toBe('2026-11-23T18:00:00.000Z');
  });
});

describe('stale intervals and the error state (real VMM processes)', () => {
  it('start after a crash closes the stale interval with stop-crash, then restarts', async () => {
    const vmm = processVmm();
    const m = manager(vmm);
    await m.create({ id: 'vm-a', shape: SHAPE, hypervisor: 'cloud-hypervisor' });
    const { pid } = await m.start('vm-a');
    expect(vmm.isAlive(pid!)).toBe(true);
    await m.crash('vm-a');
    rec.clear();
    at('10:00');
    const vm = await m.start('vm-a');
    expect(rec.entries().map(brief)).toEqual(['vm.compute.stop stop-crash vm-a', 'vm.compute.start restart vm-a']);
    expect(vm.pid).not.toBe(pid);
    expect(vmm.isAlive(vm.pid!)).toBe(true);
  });

  it('stop and rm that find the VMM dead record stop-crash, not stop-user', async () => {
    const m = manager(processVmm());
    await m.create({ id: 'vm-a', shape: SHAPE, hypervisor: 'cloud-hypervisor' });
    await m.create({ id: 'vm-b', shape: SHAPE, hypervisor: 'cloud-hypervisor' });
    await m.start('vm-a');
    await m.start('vm-b');
    await m.crash('vm-a');
    await m.crash('vm-b');
    rec.clear();
    expect((await m.stop('vm-a')).closed).toBe(true);
    expect(await m.remove('vm-b')).toEqual({ removed: true });
    expect(rec.entries().map(brief)).toEqual(['vm.compute.stop stop-crash vm-a', 'vm.compute.stop stop-crash vm-b', 'vm.storage.stop vm-rm vm-b']);
  });

  it('reconcile closes a crashed VM instead of confirming it', async () => {
    const m = manager(processVmm());
    await m.create({ id: 'vm-a', shape: SHAPE, hypervisor: 'cloud-hypervisor' });
    await m.start('vm-a');
    await m.crash('vm-a');
    rec.clear();
    expect(await m.reconcile()).toEqual({ baselines: 1, crashed: ['vm-a'] });
    expect(rec.entries().map(brief)).toEqual(['vm.compute.stop stop-crash vm-a', 'vm.storage.running baseline vm-a']);
    expect(m.list().vms['vm-a']).toMatchObject({ state: 'stopped', pid: null });
  });

  it('a VMM that will not exit leaves the VM in error with its interval open; --force closes it', async () => {
    const vmm = processVmm(IGNORES_SIGTERM);
    const m = manager(vmm, 300);
    await m.create({ id: 'vm-a', shape: SHAPE, hypervisor: 'cloud-hypervisor' });
    const { pid } = await m.start('vm-a');
    rec.clear();
    await expect(m.stop('vm-a')).rejects.toThrow(/did not exit/);
    expect(rec.entries()).toEqual([]);
    expect(m.list().vms['vm-a']).toMatchObject({ state: 'error', pid, stopped_at: null });
    expect(vmm.isAlive(pid!)).toBe(true);
    // Still billed: a baseline confirms it, and a start is refused while its VMM lives.
    await m.reconcile();
    expect(rec.kinds()).toContain(KINDS.VM_COMPUTE_RUNNING);
    await expect(m.start('vm-a')).rejects.toThrow(/error with its VMM still alive/);
    rec.clear();
    at('16:00');
    expect((await m.stop('vm-a', { force: true })).closed).toBe(true);
    expect(rec.entries().map(brief)).toEqual(['vm.compute.stop stop-user vm-a']);
    expect(vmm.isAlive(pid!)).toBe(false);
  });

  it('error, then the VMM dies on its own: the next start closes the interval as a crash', async () => {
    const vmm = processVmm(IGNORES_SIGTERM);
    const m = manager(vmm, 300);
    await m.create({ id: 'vm-a', shape: SHAPE, hypervisor: 'cloud-hypervisor' });
    await m.start('vm-a');
    await expect(m.stop('vm-a')).rejects.toThrow(/did not exit/);
    await m.crash('vm-a');
    rec.clear();
    await m.start('vm-a');
    expect(rec.entries().map((e) => `${e.kind} ${e.reason}`)).toEqual([`vm.compute.stop ${REASONS.STOP_CRASH}`, `vm.compute.start ${REASONS.RESTART}`]);
  });
});
