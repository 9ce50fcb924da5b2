/**
 * Folding the entries of one run into the state: de-duplication by id (and by writer + seq once an
 * id has been folded away), seq coverage, late and too-late entries, per-resource timelines.
 */
import { describeKind, segmentCreatedAt, type Family, type LedgerEntry } from '../../src/index.js';
import { INITIAL_STATE } from './resource-timeline.js';
import { SeqTracker } from './seq-tracker.js';
import type { ListedObject } from './source-reader.js';
import { pushFinding, type ConsumerState, type EntryFinding } from './state-store.js';
import { compareEvents, toTimelineEvent, type TimelineEvent } from './types.js';

export const resourceKey = (family: Family, id: string): string => `${family}\u0000${id}`;

function sameEvent(a: TimelineEvent, b: TimelineEvent): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** Folds the incoming entries of one run into the state (dedup, seq coverage, late/too-late). */
export class Ingest {
  readonly seq: SeqTracker;
  private readonly byId = new Map<string, TimelineEvent>();
  readonly dirty = new Set<string>();
  entries = 0;

  constructor(
    private readonly state: ConsumerState,
    private readonly previousWatermark: number | null,
    /** How far emitted_at may lie from its segment's creation time (see clock_skew_entries). */
    private readonly maxSkewMs: number,
  ) {
    this.seq = new SeqTracker(state.writers);
    for (const r of Object.values(state.resources)) for (const e of r.events) this.byId.set(e.id, e);
  }

  add(entry: LedgerEntry, object: ListedObject, offset: number): void {
    const s = this.state;
    s.totals.entries_read++;
    this.entries++;
    const ev = toTimelineEvent(entry);
    const finding = (): EntryFinding => ({ object: object.name, offset, id: entry.id, node: entry.node, emitted_at: entry.emitted_at });
    const seen = this.byId.get(ev.id);
    if (seen) {
      s.totals.duplicates++;
      if (!sameEvent(seen, ev)) {
        s.totals.conflicting_duplicates++;
        pushFinding(s.findings.conflicting_duplicates, finding());
      }
      return;
    }
    if (this.seq.has(ev.writer, ev.seq)) {
      // Same writer and seq as an entry seen before: its id left the dedup window with its timeline.
      s.totals.duplicates++;
      return;
    }
    this.seq.add(ev.writer, ev.node, ev.seq);
    if (entry.node !== object.parsed.node) {
      s.totals.node_mismatches++;
      pushFinding(s.findings.node_mismatches, finding());
    }
    // An entry stamped far from when its segment was created came from a broken clock (an RTC reset
    // to its epoch, seconds taken for milliseconds): billing it would open an interval decades long
    // or years ahead. The segment's creation time is fixed by the object's name, so the verdict is
    // the same in every run. Reported, never billed.
    const created = segmentCreatedAt(object.parsed.segment);
    if (created !== undefined && Math.abs(ev.t - created) > this.maxSkewMs) {
      s.totals.clock_skew_entries = (s.totals.clock_skew_entries ?? 0) + 1;
      pushFinding((s.findings.clock_skew_entries ??= []), finding());
      return;
    }
    if (s.horizon !== null && ev.t < s.horizon) {
      // Its resource's timeline before the horizon is folded; replaying it is no longer possible.
      s.totals.too_late_entries++;
      pushFinding(s.findings.too_late_entries, finding());
      return;
    }
    if (this.previousWatermark !== null && ev.t < this.previousWatermark) {
      s.totals.late_entries++;
      pushFinding(s.findings.late_entries, finding());
    }
    const info = describeKind(ev.kind)!;
    const rid = (info.idField === 'vm_id' ? entry.vm_id : entry.snapshot_id)!;
    const key = resourceKey(info.family, rid);
    const r = (s.resources[key] ??= { family: info.family, resource_id: rid, base: INITIAL_STATE, events: [] });
    r.events.push(ev);
    this.byId.set(ev.id, ev);
    this.dirty.add(key);
  }

  sortDirty(): void {
    for (const key of this.dirty) this.state.resources[key]!.events.sort(compareEvents);
  }
}
