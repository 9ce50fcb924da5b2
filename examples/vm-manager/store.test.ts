import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CaptureRecorder, emitAfterCommit, KINDS, REASONS } from 'metering-ledger';
import { VmManager } from './manager.js';
import { JsonFileStore } from './store.js';
import { SimulatedVmm } from './vmm.js';

const SHAPE = { cpu: 1, mem_bytes: 1024 ** 3, storage_bytes: 10 * 1024 ** 3 };

let dir: string;
let store: JsonFileStore;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vm-store-'));
  store = new JsonFileStore(path.join(dir, 'store.json'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

/**
 * What another process does when it decides our lock is stale (we stalled past the threshold): it
 * breaks the lock, takes its own, and releases it a moment later.
 */
function stealLock(lockPath: string): void {
  fs.rmSync(lockPath, { recursive: true, force: true });
  fs.mkdirSync(lockPath);
  setTimeout(() => fs.rmSync(lockPath, { recursive: true, force: true }), 50);
}

/** A simulated VMM probed inside the store closure, which is where the stall that loses the lock happens. */
class StallingVmm extends SimulatedVmm {
  constructor(
    dir: string,
    private readonly lockPath: string,
    public stalls: number,
  ) {
    super(dir);
  }
  override isAlive(pid: number): boolean {
    if (this.stalls > 0) {
      this.stalls--;
      stealLock(this.lockPath);
    }
    return super.isAlive(pid);
  }
}

describe('JsonFileStore', () => {
  it('serializes concurrent updates: no increment is lost', async () => {
    await store.update((d) => {
      d.vms.counter = { id: 'counter', state: 'created', shape: SHAPE, hypervisor: 'x', pid: 0, first_booted: false, created_at: '', started_at: null, stopped_at: null, source_snapshot_id: null };
    });
    await Promise.all(
      Array.from({ length: 20 }, () =>
        store.update((d) => {
          d.vms.counter!.pid! += 1;
        }),
      ),
    );
    expect(store.read().vms.counter!.pid).toBe(20);
  });

  it('a closure that throws after staging writes nothing and emits nothing', async () => {
    const rec = new CaptureRecorder();
    await store.update(() => undefined);
    const before = fs.readFileSync(store.file, 'utf8');
    await expect(
      emitAfterCommit(rec, (stage) =>
        store.update((data) => {
          stage.begin();
          stage.add({ kind: KINDS.VM_STORAGE_START, reason: REASONS.BOOT, vm_id: 'vm-x', shape: SHAPE });
          data.vms['vm-x'] = { id: 'vm-x', state: 'created', shape: SHAPE, hypervisor: 'x', pid: null, first_booted: false, created_at: '', started_at: null, stopped_at: null, source_snapshot_id: null };
          throw new Error('quota exceeded');
        }),
      ),
    ).rejects.toThrow('quota exceeded');
    expect(rec.entries()).toEqual([]);
    expect(fs.readFileSync(store.file, 'utf8')).toBe(before);
    expect(fs.existsSync(store.lockPath)).toBe(false);
  });

  it('refuses to overwrite a store it cannot read', async () => {
    fs.writeFileSync(store.file, '{"not":"a store"');
    await expect(store.update(() => undefined)).rejects.toThrow(/unreadable.*left untouched/);
    expect(fs.readFileSync(store.file, 'utf8')).toBe('{"not":"a store"');
  });
});

describe('manager on a store whose lock is lost mid-update', () => {
  async function runningVm(vmm: SimulatedVmm, rec: CaptureRecorder): Promise<VmManager> {
    const m = new VmManager({ store, recorder: rec, vmm, now: () => new Date('2026-11-23T12:00:00Z') });
    await m.create({ id: 'vm-a', shape: SHAPE, hypervisor: 'firecracker' });
    await m.start('vm-a');
    rec.clear();
    return m;
  }

  it('the retried closure emits once', async () => {
    const rec = new CaptureRecorder();
    const vmm = new StallingVmm(path.join(dir, 'sim'), store.lockPath, 0);
    const m = await runningVm(vmm, rec);
    vmm.stalls = 1;
    expect(await m.reconcile()).toEqual({ baselines: 2, crashed: [] });
    expect(vmm.stalls).toBe(0);
    expect(rec.kinds().sort()).toEqual([KINDS.VM_COMPUTE_RUNNING, KINDS.VM_STORAGE_RUNNING]);
  });

  it('an update that never commits emits nothing', async () => {
    const rec = new CaptureRecorder();
    const vmm = new StallingVmm(path.join(dir, 'sim'), store.lockPath, 0);
    const m = await runningVm(vmm, rec);
    const before = fs.readFileSync(store.file, 'utf8');
    vmm.stalls = 3;
    await expect(m.reconcile()).rejects.toThrow(/lost the lock 3 times/);
    expect(rec.entries()).toEqual([]);
    expect(fs.readFileSync(store.file, 'utf8')).toBe(before);
  });
});
