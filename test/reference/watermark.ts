/**
 * The completeness watermark. Each node's shipper says what it has shipped through
 * (`complete_through`); the global watermark is the minimum over live nodes minus a grace period,
 * never later than the consumer's own clock minus the grace, and it never moves back: what was
 * published final stays final.
 *
 * One trusted clock (seeds/001): a node's own clock says when it wrote its report (`reported_at`),
 * but a node whose clock runs days ahead would never go stale. What is trusted instead is the
 * destination's own timestamp of the progress object's last write (GCS `updated`, a file's mtime):
 * the node is stale when the consumer's clock minus that timestamp exceeds stale-after, and its
 * complete_through counts at most up to that timestamp (a node cannot vouch for the future).
 *
 * Fail closed on read errors: a progress object that is listed but cannot be read in this run
 * keeps the node's last known complete_through (kept in state); with none known it vouches for nothing (the
 * epoch) and the watermark stays where it is. Only no progress object at all, or real silence, makes a node stale.
 */
import type { NodeProgress } from '../../sink/layout.js';
import type { NodeStatus } from '../../sink/consumer/findings.js';
import { iso } from '../../sink/consumer/types.js';

/** What a run knows of a node's progress: this run's read, or the last known one kept in state. */
export interface KnownProgress {
  reported_at: string;
  complete_through: string;
  backlog_bytes: number | null;
  /** epoch ms, the destination's timestamp of the write that carried it. */
  updated: number;
}

export interface NodeEvidence {
  /** The progress object as listed now: its destination timestamp (undefined if not listed). */
  listedUpdated?: number | undefined;
  /** This run's read (undefined: not listed; `error`: listed but unreadable or invalid). */
  read?: { progress: NodeProgress; updated: number } | { error: string } | undefined;
  /** The last usable progress seen by an earlier run. */
  lastKnown?: KnownProgress | undefined;
}

export interface WatermarkInput {
  nodes: ReadonlyMap<string, NodeEvidence>;
  /** Nodes that have ledger data (a node can have data before its first progress report). */
  nodesWithData: Iterable<string>;
  now: number;
  graceMs: number;
  staleAfterMs: number;
  /** The watermark of the previous run (it never moves back). */
  previous: number | null;
}

export interface WatermarkResult {
  watermark: number;
  /** What this run's evidence alone supports (may be behind `watermark` after a node came back). */
  computed: number;
  nodes: NodeStatus[];
  /** Usable progress per node after this run, to keep in state. */
  known: Map<string, KnownProgress>;
}

export function computeWatermark(input: WatermarkInput): WatermarkResult {
  const names = new Set<string>([...input.nodes.keys(), ...input.nodesWithData]);
  const nodes: NodeStatus[] = [];
  const known = new Map<string, KnownProgress>();
  let minComplete = Infinity;
  for (const node of [...names].sort()) {
    const ev = input.nodes.get(node) ?? {};
    const read = ev.read;
    let current: KnownProgress | undefined;
    let error: string | null = null;
    if (read && 'progress' in read) {
      const p = read.progress;
      current = { reported_at: p.reported_at, complete_through: p.complete_through, backlog_bytes: typeof p.backlog_bytes === 'number' ? p.backlog_bytes : null, updated: read.updated };
    } else {
      error = read ? read.error : ev.lastKnown ? 'progress object no longer listed' : 'no progress object';
      current = ev.lastKnown;
    }
    if (current) known.set(node, current);
    // A listed object shows the node alive even when its body could not be read this time.
    const updated = ev.listedUpdated ?? current?.updated;
    const listedButUnreadable = read !== undefined && !('progress' in read);
    const stale = updated === undefined || (!listedButUnreadable && current === undefined) || input.now - updated > input.staleAfterMs;
    const trusted = current ? Math.min(Date.parse(current.complete_through), current.updated) : null;
    // Listed but never readable: it vouches for nothing yet (the epoch), so it holds the watermark back.
    if (!stale) minComplete = Math.min(minComplete, trusted ?? 0);
    nodes.push({
      node,
      reported_at: current ? iso(Date.parse(current.reported_at)) : null,
      complete_through: current ? iso(Date.parse(current.complete_through)) : null,
      updated_at: updated === undefined ? null : iso(updated),
      backlog_bytes: current?.backlog_bytes ?? null,
      stale,
      holds_watermark: false,
      progress_error: error,
      trusted_complete_through: trusted,
    });
  }
  const computed = Math.min(input.now, minComplete) - input.graceMs;
  for (const n of nodes) {
    if (!n.stale && (n.trusted_complete_through ?? 0) === minComplete && minComplete < input.now) n.holds_watermark = true;
  }
  const watermark = input.previous === null ? computed : Math.max(input.previous, computed);
  return { watermark, computed, nodes, known };
}
