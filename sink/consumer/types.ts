/** Shapes shared by the consumer's steps: what comes out of the rollup (intervals, hourly rows). */
import type { Family, Reason } from '../../src/index.js';
import type { FoldAnomalyType } from './timeline-fold.js';

/** Where a line came from: the object name and the byte offset of the line inside it. */
export interface LineLocation {
  object: string;
  offset: number;
}

/** One usage interval of one resource, as written to intervals.ndjson. */
export interface UsageInterval {
  family: Family;
  resource_id: string;
  /** Node (object partition) of the event that opened the interval: billed there. */
  node: string;
  hypervisor: string | null;
  shape: { cpu: number; mem_bytes: number; storage_bytes: number };
  /** ISO time of the opening event. */
  start: string;
  /** ISO time of the closing stop or handoff, the derived end (unconfirmed_end), or null while open. */
  end: string | null;
  open_reason: Reason;
  /** The stop's reason, "handoff" (taken over by another node), "stale-node" (unconfirmed end), null while open. */
  close_reason: Reason | 'handoff' | 'stale-node' | null;
  /** Opened by a `*.running` baseline, not by a start. */
  baseline: boolean;
  /** Ended at the last evidence because its node went silent: a bounded overbill, not a seen stop. */
  unconfirmed_end: boolean;
  start_event_id: string;
  /** The stop that closed it, or the start/baseline of the node that took it over; null otherwise. */
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

/** An anomaly the timeline found: reported, never billed. */
export interface TimelineAnomaly {
  type: FoldAnomalyType;
  family: Family;
  resource_id: string;
  event_id: string;
  /** The node (object partition) the event came from. */
  node: string;
  emitted_at: string;
}

export const HOUR_MS = 3_600_000;
export const iso = (ms: number): string => new Date(ms).toISOString();
