/** report.json: everything a run found, cumulative over all runs of one state, in a stable order. */
import type { EntryFinding, InvalidLineFinding, NodeStatus, SeqGap } from './findings.js';
import type { TimelineAnomaly, UsageInterval } from './types.js';

export interface Counted<T> {
  count: number;
  /** At most MAX_FINDINGS (1000) items; `count` is exact. */
  items: T[];
}

export interface BadObject {
  object: string;
  error: string;
}

export interface RollupReport {
  v: 1;
  source: string;
  /** The consumer's clock for this run (the one trusted clock). */
  now: string;
  /** Hours ending at or before it are final. Never moves back. */
  watermark: string;
  /** What this run's evidence alone supports; behind `watermark` after a stale node came back. */
  watermark_computed: string;
  grace_ms: number;
  stale_after_ms: number;
  retain_ms: number;
  max_skew_ms: number;
  /** watermark - retain: a start or baseline arriving later with emitted_at before it is too late. */
  horizon: string | null;
  nodes: ReportedNode[];
  objects: { ledger_read: number; quarantine_read: number; bad: BadObject[]; unknown: string[] };
  entries_read: number;
  duplicates: number;
  /** Copies of an id whose content differs from the kept copy (the one at the smallest object, offset). */
  conflicting_duplicates: Counted<EntryFinding>;
  /** Entries with a (writer, seq) that an entry of another id has too (both billed). */
  seq_conflicts: Counted<EntryFinding>;
  invalid_lines: Counted<InvalidLineFinding>;
  quarantined_lines: number;
  orphan_stops: Counted<TimelineAnomaly>;
  duplicate_starts: Counted<TimelineAnomaly>;
  duplicate_stops: Counted<TimelineAnomaly>;
  /** Stops from the node a resource was handed off from, after the handoff: expected, ignored. */
  handoff_stops: Counted<TimelineAnomaly>;
  seq_gaps: { writers: number; missing: number; items: SeqGap[] };
  stale_intervals: Counted<Pick<UsageInterval, 'family' | 'resource_id' | 'node' | 'start' | 'end'>>;
  late_entries: Counted<EntryFinding>;
  too_late_entries: Counted<EntryFinding>;
  /** Entries stamped more than max_skew_ms away from their segment's creation: a broken clock. Not billed. */
  clock_skew_entries: Counted<EntryFinding>;
  node_mismatches: Counted<EntryFinding>;
  intervals: { total: number; open: number; unconfirmed_end: number };
  hourly_rows: { total: number; final: number; provisional: number };
  revisions: number;
}

/** A node as report.json shows it (the trusted time as ISO `updated_at`). */
export type ReportedNode = Omit<NodeStatus, 'trusted_complete_through'>;
