/**
 * Folding the entries of one run into the state: one record per entry id. De-duplication is by
 * `id` only, and the copy kept is the one with the smallest (object name, byte offset) among all
 * copies ever read, so which copy wins does not depend on how the objects were split over runs
 * (a later run that brings a winning copy changes the result, and the change is a revision).
 */
import { createHash } from 'node:crypto';
import { describeKind, segmentCreatedAt, serializeEntry, type LedgerEntry } from '../../src/index.js';
import type { ListedObject } from '../../sink/consumer/source-reader.js';

/** The kept copy of an entry, as the rules need it. */
export interface KeptEntry {
  id: string;
  /** emitted_at, epoch ms */
  t: number;
  /** The node of the object it came from (its `node=` partition): the node it is billed on. */
  node: string;
  /** The entry's own `node` field (differs from `node` only in a mismatch). */
  entry_node: string;
  writer: string;
  seq: number;
  kind: LedgerEntry['kind'];
  resource_id: string;
  reason: LedgerEntry['reason'];
  hypervisor: string | null;
  cpu: number;
  mem_bytes: number;
  storage_bytes: number;
  emitted_at: string;
  /** Creation time of the segment holding the kept copy (from the object name), epoch ms. */
  segment_created: number | null;
}

/** Where the run that first saw an id stood: what decides "late" and "too late". */
export interface Arrival {
  /** The horizon in force (previous run's watermark - retain); null on a first run. */
  horizon: number | null;
  /** The previous run's watermark; null on a first run. */
  watermark: number | null;
}

/** Another copy of the id: where it is, and a digest of its content. */
export type CopyRef = [object: string, offset: number, digest: string];

export interface IdRecord {
  e: KeptEntry;
  /** Location of the kept copy. */
  object: string;
  offset: number;
  digest: string;
  arrival: Arrival;
  /** Every other copy read (absent when there is none). */
  copies?: CopyRef[];
}

const digestOf = (entry: LedgerEntry): string => createHash('md5').update(serializeEntry(entry)).digest('base64').slice(0, 22);

/** (object, offset) order: the rule that picks the kept copy. Object names are ASCII. */
export function locationBefore(aObject: string, aOffset: number, bObject: string, bOffset: number): boolean {
  return aObject < bObject || (aObject === bObject && aOffset < bOffset);
}

function keptEntry(entry: LedgerEntry, object: ListedObject): KeptEntry {
  const info = describeKind(entry.kind)!;
  return {
    id: entry.id,
    t: Date.parse(entry.emitted_at),
    node: object.parsed.node,
    entry_node: entry.node,
    writer: entry.writer,
    seq: entry.seq,
    kind: entry.kind,
    resource_id: (info.idField === 'vm_id' ? entry.vm_id : entry.snapshot_id)!,
    reason: entry.reason,
    hypervisor: entry.hypervisor ?? null,
    cpu: entry.shape.cpu,
    mem_bytes: entry.shape.mem_bytes,
    storage_bytes: entry.shape.storage_bytes,
    emitted_at: entry.emitted_at,
    segment_created: segmentCreatedAt(object.parsed.segment) ?? null,
  };
}

/** Adds one copy of an entry read at (object, offset) in a run that stands at `arrival`. */
export function addCopy(records: Map<string, IdRecord>, entry: LedgerEntry, object: ListedObject, offset: number, arrival: Arrival): void {
  const digest = digestOf(entry);
  const rec = records.get(entry.id);
  if (rec === undefined) {
    records.set(entry.id, { e: keptEntry(entry, object), object: object.name, offset, digest, arrival });
    return;
  }
  const copies = (rec.copies ??= []);
  if (locationBefore(object.name, offset, rec.object, rec.offset)) {
    // The new copy wins: the old kept copy becomes just another copy. The id's arrival stays the first run's.
    copies.push([rec.object, rec.offset, rec.digest]);
    rec.e = keptEntry(entry, object);
    rec.object = object.name;
    rec.offset = offset;
    rec.digest = digest;
  } else {
    copies.push([object.name, offset, digest]);
  }
}
