/**
 * A small hand-built fleet that exercises most rules at once, in two phases: duplicates (also
 * gzip), an orphan, duplicate starts and stops, baselines, a tie group across writers, a handoff
 * between nodes, a seq gap, three nodes of which one is stale; then the stale node comes back with
 * a stop, which revises final hours.
 */
import { HOUR, MIN, T0, TestBucket, TestWriter } from './consumer-bucket.js';

export const FLEET_GRACE_MS = 5 * MIN;
export const FLEET_STALE_AFTER_MS = 6 * HOUR;

export interface HandFleet {
  /** `now` of the first run. */
  now: number;
  /** Adds the second phase (node-c returns); returns the `now` of the second run. */
  comeBack: () => Promise<number>;
}

export async function handBuiltFleet(bucket: TestBucket): Promise<HandFleet> {
  const a = new TestWriter('node-a', 'wa1');
  const a2 = new TestWriter('node-a', 'wa2');
  const b = new TestWriter('node-b', 'wb1');
  const c = new TestWriter('node-c', 'wc1');
  const aEntries = [
    a.start('vm1', T0 + 7 * MIN, { cpu: 4 }),
    a.entry('vm.storage.start', 'vm1', T0 + 7 * MIN, { storage: 50 }),
    a.start('vm1', T0 + 9 * MIN, { cpu: 32 }),
    a.stop('vm1', T0 + 3 * HOUR + 1),
    a.stop('vm1', T0 + 3 * HOUR + 2),
    a.stop('vm-orphan', T0 + HOUR),
    a.entry('snap.storage.start', 's1', T0 + 2 * HOUR, { storage: 7, hypervisor: '' }),
  ];
  await bucket.put(aEntries, { gzip: true });
  await bucket.put([aEntries[2]!, aEntries[3]!]); // duplicates by id
  await bucket.put([a2.running('vm2', T0 + 30 * MIN), a2.running('vm2', T0 + 90 * MIN), a2.start('vm3', T0 + 5 * HOUR + 59 * MIN)]);
  await bucket.put([b.start('vm4', T0 + HOUR), b.stop('vm4', T0 + HOUR), b.start('vm4', T0 + HOUR), b.stop('vm4', T0 + 2 * HOUR + 13 * MIN)]);
  // Same time, two writers: a tie group.
  await bucket.put([c.start('vm5', T0 + 4 * HOUR), c.running('vm6', T0 + 4 * HOUR + 1)]);
  await bucket.put([new TestWriter('node-c', 'wc0').stop('vm5', T0 + 4 * HOUR)]);
  await bucket.put([c.running('vm6', T0 + 4 * HOUR + 20 * MIN)]);
  // A handoff: vm1's storage moves to node-b while open on node-a.
  await bucket.put([b.entry('vm.storage.start', 'vm1', T0 + 5 * HOUR, { storage: 60 })]);
  const now = T0 + 12 * HOUR;
  await bucket.progress('node-a', T0 + 7 * HOUR + 17 * MIN, now - MIN, { wa1: 9 });
  await bucket.progress('node-b', T0 + 9 * HOUR, now - 2 * MIN);
  await bucket.progress('node-c', T0 + 4 * HOUR + 45 * MIN, now - 7 * HOUR); // stale
  return {
    now,
    comeBack: async () => {
      await bucket.put([c.stop('vm6', T0 + 6 * HOUR)]);
      await bucket.progress('node-c', T0 + 11 * HOUR, now + HOUR);
      return now + HOUR;
    },
  };
}
