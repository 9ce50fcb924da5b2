/**
 * The consumer benchmark's fleet and the buckets it is served from. The fleet: --nodes nodes with
 * --vms VMs each, starting, stopping, reporting baselines, snapshotting (oldest snapshots deleted),
 * written by the real recorder at a fixed rate and cut into objects as the shipper cuts them
 * (node-objects.ts, one child process per core). Written once into a "full" bucket; every measured
 * bucket is a set of hard links into it plus one progress object per node, so the objects a run
 * reads are byte for byte the ones another run read.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runMeasured } from './child.js';
import type { ShippedObject } from './node-objects.js';

export const DAY_MS = 86_400_000;

export interface FleetShape {
  nodes: number;
  vms: number;
  /** Entries each node writes. */
  entriesPerNode: number;
  /** Simulated time between two entries of one node. */
  stepMs: number;
  startMs: number;
  /** Largest object (the shipper's default is 8 MiB). */
  batchBytes: number;
}

/** node -> its objects in ledger order. */
export type Fleet = Map<string, ShippedObject[]>;

export const nodeName = (i: number): string => `node-${String(i).padStart(2, '0')}`;

export async function makeFleet(bucket: string, shape: FleetShape): Promise<Fleet> {
  const nodes = Array.from({ length: shape.nodes }, (_, i) => nodeName(i));
  const fleet: Fleet = new Map();
  const queue = [...nodes];
  const worker = async (): Promise<void> => {
    for (let node = queue.shift(); node !== undefined; node = queue.shift()) {
      const r = await runMeasured(
        ['bench/support/node-objects.ts', '--bucket', bucket, '--node', node, '--entries', String(shape.entriesPerNode), '--vms', String(shape.vms), '--step-ms', String(shape.stepMs), '--start-ms', String(shape.startMs), '--batch-bytes', String(shape.batchBytes)],
        { typescript: true },
      );
      const objects = r.stdout
        .trim()
        .split('\n')
        .filter((l) => l.length > 0)
        .map((l) => JSON.parse(l) as ShippedObject);
      fleet.set(node, objects);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, os.cpus().length) }, worker));
  // In node order, whatever order the workers finished in.
  return new Map([...fleet].sort(([a], [b]) => (a < b ? -1 : 1)));
}

export const fleetEntries = (fleet: Fleet): number => [...fleet.values()].flat().reduce((s, o) => s + o.entries, 0);

export interface Landed {
  objects: number;
  entries: number;
  bytes: number;
}

/** Hard-links objects of the full bucket into `dir` (as a shipper's uploads would appear). */
export function landObjects(full: string, dir: string, objects: readonly ShippedObject[]): Landed {
  const landed: Landed = { objects: 0, entries: 0, bytes: 0 };
  for (const o of objects) {
    const to = path.join(dir, ...o.name.split('/'));
    fs.mkdirSync(path.dirname(to), { recursive: true });
    fs.linkSync(path.join(full, ...o.name.split('/')), to);
    landed.objects++;
    landed.entries += o.entries;
    landed.bytes += fs.statSync(to).size;
  }
  return landed;
}

/**
 * One progress object per node: everything through its last landed entry is shipped, reported a
 * minute before the consumer's clock.
 */
export function writeProgress(dir: string, throughMs: ReadonlyMap<string, number>, nowMs: number): void {
  fs.mkdirSync(path.join(dir, 'nodes'), { recursive: true });
  for (const [node, lastMs] of throughMs) {
    const progress = { v: 1, node, reported_at: new Date(nowMs - 60_000).toISOString(), complete_through: new Date(lastMs + 1).toISOString(), backlog_bytes: 0, writers: {} };
    fs.writeFileSync(path.join(dir, 'nodes', `${node}.json`), JSON.stringify(progress));
  }
}

export interface Subset extends Landed {
  dir: string;
  /** The consumer's clock for a run over it: a little after its newest entry. */
  nowMs: number;
}

/**
 * A bucket with each node's first objects, up to `perNode` entries each (at least one object), plus
 * progress: the same fleet over a shorter time, which is how a ledger grows.
 */
export function firstObjects(full: string, fleet: Fleet, dir: string, perNode: number): Subset {
  const through = new Map<string, number>();
  const taken: ShippedObject[] = [];
  for (const [node, objects] of fleet) {
    let entries = 0;
    for (const o of objects) {
      if (entries >= perNode - 1e-9 && entries > 0) break;
      taken.push(o);
      entries += o.entries;
      through.set(node, o.lastMs);
    }
  }
  const landed = landObjects(full, dir, taken);
  const nowMs = Math.max(...through.values()) + 10 * 60_000;
  writeProgress(dir, through, nowMs);
  return { ...landed, dir, nowMs };
}
