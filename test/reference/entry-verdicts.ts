/**
 * What each kept entry is worth to billing, decided from the entry, its kept copy's location and
 * the run that first saw it, never from the order in which copies arrived:
 *
 *   clock skew   emitted_at further than max-skew from its segment's creation: a broken clock
 *                (an RTC reset to its epoch, a typo'd year). Reported, not billed; its seq counts.
 *   too late     a start or baseline before the horizon in force when it first arrived: the hours
 *                it would open were settled long ago. Reported, not billed. A stop is never too
 *                late: it ends the interval it belongs to, or the resource would be billed forever.
 *   late         before the watermark in force when it first arrived: billed, and counted (the
 *                hours it changes become revisions).
 *
 * Also counted here: duplicates and conflicting copies, seq conflicts (distinct ids sharing one
 * writer and seq: a restored backup, a cloned node image; both are billed) and node mismatches.
 */
import { describeKind, type Family } from '../../src/index.js';
import type { IdRecord, KeptEntry } from './ingest.js';
import { SeqTracker } from './seq-tracker.js';
import type { EntryFinding } from '../../sink/consumer/findings.js';
import type { FoldEvent } from '../../sink/consumer/timeline-fold.js';

export const resourceKey = (family: Family, id: string): string => `${family}\u0000${id}`;

export interface ResourceEvents {
  family: Family;
  resource_id: string;
  events: FoldEvent[];
}

export interface Verdicts {
  entries_read: number;
  duplicates: number;
  conflicting_duplicates: EntryFinding[];
  seq_conflicts: EntryFinding[];
  node_mismatches: EntryFinding[];
  clock_skew_entries: EntryFinding[];
  too_late_entries: EntryFinding[];
  late_entries: EntryFinding[];
  seq: SeqTracker;
  resources: Map<string, ResourceEvents>;
}

const finding = (r: IdRecord): EntryFinding => ({ object: r.object, offset: r.offset, id: r.e.id, node: r.e.entry_node, emitted_at: r.e.emitted_at });

function foldEvent(e: KeptEntry, phase: FoldEvent['phase']): FoldEvent {
  return { id: e.id, t: e.t, node: e.node, writer: e.writer, seq: e.seq, phase, reason: e.reason, hypervisor: e.hypervisor, cpu: e.cpu, mem_bytes: e.mem_bytes, storage_bytes: e.storage_bytes };
}

/** Findings lists in (object, offset) order, so they do not depend on arrival order either. */
function byLocation(a: EntryFinding, b: EntryFinding): number {
  return a.object < b.object ? -1 : a.object > b.object ? 1 : a.offset - b.offset;
}

export function judgeEntries(records: Iterable<IdRecord>, maxSkewMs: number): Verdicts {
  const v: Verdicts = {
    entries_read: 0,
    duplicates: 0,
    conflicting_duplicates: [],
    seq_conflicts: [],
    node_mismatches: [],
    clock_skew_entries: [],
    too_late_entries: [],
    late_entries: [],
    seq: new SeqTracker(),
    resources: new Map(),
  };
  // Kept copies by (writer, seq): the first in location order is the original, the others conflict.
  const bySeq = new Map<string, IdRecord[]>();
  for (const r of records) {
    const e = r.e;
    v.entries_read += 1 + (r.copies?.length ?? 0);
    v.duplicates += r.copies?.length ?? 0;
    for (const [object, offset, digest] of r.copies ?? []) {
      if (digest !== r.digest) v.conflicting_duplicates.push({ object, offset, id: e.id, node: e.entry_node, emitted_at: e.emitted_at });
    }
    const sk = `${e.writer}\u0000${e.seq}`;
    const same = bySeq.get(sk);
    if (same) same.push(r);
    else bySeq.set(sk, [r]);
    v.seq.add(e.writer, e.node, e.seq);
    if (e.entry_node !== e.node) v.node_mismatches.push(finding(r));
    if (e.segment_created !== null && Math.abs(e.t - e.segment_created) > maxSkewMs) {
      v.clock_skew_entries.push(finding(r));
      continue;
    }
    const info = describeKind(e.kind)!;
    if (info.phase !== 'stop' && r.arrival.horizon !== null && e.t < r.arrival.horizon) {
      v.too_late_entries.push(finding(r));
      continue;
    }
    if (r.arrival.watermark !== null && e.t < r.arrival.watermark) v.late_entries.push(finding(r));
    const key = resourceKey(info.family, e.resource_id);
    let res = v.resources.get(key);
    if (!res) v.resources.set(key, (res = { family: info.family, resource_id: e.resource_id, events: [] }));
    res.events.push(foldEvent(e, info.phase));
  }
  for (const group of bySeq.values()) {
    if (group.length < 2) continue;
    group.sort((a, b) => (a.object < b.object ? -1 : a.object > b.object ? 1 : a.offset - b.offset));
    for (const r of group.slice(1)) v.seq_conflicts.push(finding(r));
  }
  for (const list of [v.conflicting_duplicates, v.seq_conflicts, v.node_mismatches, v.clock_skew_entries, v.too_late_entries, v.late_entries]) list.sort(byLocation);
  return v;
}
