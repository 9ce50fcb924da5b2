/**
 * The completeness watermark. Each node's shipper says what it has shipped through
 * (`complete_through`); the global watermark is the minimum over live nodes minus a grace period,
 * never later than the consumer's own clock minus the grace (one trusted clock, like multica's
 * `now() - 5 minutes`), and it never moves back: what was published final stays final.
 *
 * A node is stale when its last report (`reported_at`) is older than `staleAfterMs` by the
 * consumer's clock; a stale node, or one with data but no usable progress object, stops holding
 * the watermark back.
 */
import type { NodeProgress } from '../layout.js';
import { iso } from './types.js';

export interface NodeStatus {
  node: string;
  reported_at: string | null;
  complete_through: string | null;
  backlog_bytes: number | null;
  /** Silent longer than stale-after (or never reported): its open intervals end at the last evidence. */
  stale: boolean;
  /** This node's complete_through is the minimum that set the watermark. */
  holds_watermark: boolean;
  /** Why the progress object could not be used, if it could not. */
  progress_error: string | null;
}

export interface WatermarkInput {
  progress: ReadonlyMap<string, NodeProgress | { error: string }>;
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
}

export function computeWatermark(input: WatermarkInput): WatermarkResult {
  const names = new Set<string>([...input.progress.keys(), ...input.nodesWithData]);
  const nodes: NodeStatus[] = [];
  let minComplete = Infinity;
  for (const node of [...names].sort()) {
    const p = input.progress.get(node);
    if (!p || 'error' in p) {
      nodes.push({ node, reported_at: null, complete_through: null, backlog_bytes: null, stale: true, holds_watermark: false, progress_error: p ? p.error : 'no progress object' });
      continue;
    }
    const reported = Date.parse(p.reported_at);
    const complete = Date.parse(p.complete_through);
    const stale = input.now - reported > input.staleAfterMs;
    if (!stale) minComplete = Math.min(minComplete, complete);
    nodes.push({ node, reported_at: iso(reported), complete_through: iso(complete), backlog_bytes: typeof p.backlog_bytes === 'number' ? p.backlog_bytes : null, stale, holds_watermark: false, progress_error: null });
  }
  const computed = Math.min(input.now, minComplete) - input.graceMs;
  for (const n of nodes) {
    if (!n.stale && n.complete_through !== null && Date.parse(n.complete_through) === minComplete && minComplete < input.now) n.holds_watermark = true;
  }
  const watermark = input.previous === null ? computed : Math.max(input.previous, computed);
  return { watermark, computed, nodes };
}
