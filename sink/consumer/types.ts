/** Shapes shared by the consumer's steps: what comes out of the rollup (intervals, hourly rows). */
import type { Family, LedgerEntry, Reason } from '../../src/index.js';

/** Where a line came from: the object name and the byte offset of the line inside it. */
export interface LineLocation {
  object: string;
  offset: number;
}

/** One usage interval of one resource, as written to intervals.ndjson. */
export interface UsageInterval {
  family: Family;
  resource_id: string;
  /** Node of the event that opened the interval (billed there). */
  node: string;
  hypervisor: string | null;
  shape: { cpu: number; mem_bytes: number; storage_bytes: number };
  /** ISO time of the opening event. */
  start: string;
  /** ISO time of the closing stop, of the last evidence (unconfirmed_end), or null while open. */
  end: string | null;
  open_reason: Reason;
  /** The stop's reason, "stale-node" for an unconfirmed end, null while open. */
  close_reason: Reason | 'stale-node' | null;
  /** Opened by a `*.running` baseline, not by a start. */
  baseline: boolean;
  /** Ended at the last evidence because its node went silent: a bounded overbill, not a seen stop. */
  unconfirmed_end: boolean;
  start_event_id: string;
  end_event_id: string | null;
}

/** One hourly rollup row, as written to hourly.ndjson. */
export interface HourlyRow {
  /** Start of the UTC hour, ISO. */
  hour: string;
  family: Family;
  resource_id: string;
  node: string;
  hypervisor: string | null;
  cpu: number;
  mem_bytes: number;
  storage_bytes: number;
  /** Integer milliseconds of the hour covered (0 only in a revision that withdraws a row). */
  ms: number;
  /** The hour lies wholly before the watermark: this value is published and changes only by revision. */
  final: boolean;
  /** 0 while provisional; 1 for the first final value; +1 for each revision. */
  version: number;
  /** The version this row replaces (a revision), else null. */
  revises: number | null;
  /** ms of the replaced version (a revision), else null. */
  previous_ms: number | null;
}

/** Minimal event data the timeline needs (kept in state for resources whose timeline can change). */
export interface TimelineEvent {
  id: string;
  /** epoch ms of emitted_at */
  t: number;
  writer: string;
  seq: number;
  node: string;
  kind: LedgerEntry['kind'];
  reason: Reason;
  hypervisor: string | null;
  cpu: number;
  mem_bytes: number;
  storage_bytes: number;
}

/** An anomaly the timeline found: reported, never billed. */
export interface TimelineAnomaly {
  type: 'duplicate_start' | 'duplicate_stop' | 'orphan_stop';
  family: Family;
  resource_id: string;
  event_id: string;
  node: string;
  emitted_at: string;
}

export function toTimelineEvent(e: LedgerEntry): TimelineEvent {
  return {
    id: e.id,
    t: Date.parse(e.emitted_at),
    writer: e.writer,
    seq: e.seq,
    node: e.node,
    kind: e.kind,
    reason: e.reason,
    hypervisor: e.hypervisor ?? null,
    cpu: e.shape.cpu,
    mem_bytes: e.shape.mem_bytes,
    storage_bytes: e.shape.storage_bytes,
  };
}

/** The total order of one resource's events: emitted_at, then writer, then seq (then id, for corrupt twins). */
export function compareEvents(a: TimelineEvent, b: TimelineEvent): number {
  if (a.t !== b.t) return a.t - b.t;
  if (a.writer !== b.writer) return a.writer < b.writer ? -1 : 1;
  if (a.seq !== b.seq) return a.seq - b.seq;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

export const HOUR_MS = 3_600_000;
export const iso = (ms: number): string => new Date(ms).toISOString();
