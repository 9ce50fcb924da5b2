/**
 * What report.json lists beside the rows: nodes and their progress, seq gaps, and the entries and
 * lines a run found wrong. Shapes only; the engine fills them from its tables, the reference model
 * (test/reference/) from its own steps.
 */
import type { LineLocation } from './types.js';

export interface NodeStatus {
  node: string;
  /** What the node's own clock said when it wrote its report: shown, never trusted. */
  reported_at: string | null;
  /** As the node reported it. */
  complete_through: string | null;
  /** The destination's timestamp of the node's last progress write (the trusted clock), ISO. */
  updated_at: string | null;
  backlog_bytes: number | null;
  /** Silent longer than stale-after by the trusted clock (or never reported): its open intervals end. */
  stale: boolean;
  /** This node's trusted complete_through is the minimum that set the watermark. */
  holds_watermark: boolean;
  /** Why this run could not use the progress object, if it could not. */
  progress_error: string | null;
  /** epoch ms: min(complete_through, updated); null when nothing is known. Not in report.json. */
  trusted_complete_through: number | null;
}

export interface SeqGap {
  writer: string;
  node: string;
  /** Inclusive ranges of missing seq numbers. */
  missing: [number, number][];
  /** Seq numbers missing in total. */
  count: number;
}

export interface InvalidLineFinding extends LineLocation {
  length: number;
  reason: string;
}

export interface EntryFinding extends LineLocation {
  id: string;
  node: string;
  emitted_at: string;
}

/** Findings lists keep at most this many items each (the counts are always exact). */
export const MAX_FINDINGS = 1000;
