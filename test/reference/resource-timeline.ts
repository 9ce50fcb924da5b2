/**
 * One resource's timeline: its billable events, in the fold's order, through contract v2's machine
 * (timeline-fold.ts, the single definition shared with the SQL engines), as usage intervals and
 * anomalies. An interval still open on a stale node gets its derived end here: the node vouched,
 * up to its trusted complete_through, that no stop was among what it wrote.
 */
import type { Family, Reason } from '../../src/index.js';
import type { NodeStatus } from '../../sink/consumer/findings.js';
import { compareFoldEvents, foldTimeline, type FoldEvent, type FoldInterval } from '../../sink/consumer/timeline-fold.js';
import { iso, type TimelineAnomaly, type UsageInterval } from '../../sink/consumer/types.js';

export interface TimelineResult {
  intervals: UsageInterval[];
  anomalies: TimelineAnomaly[];
}

/** The end an open interval gets when its node went silent: its last evidence, or what the node vouched for. */
export function staleEnd(iv: Pick<FoldInterval, 'last_evidence'>, node: NodeStatus, now: number): number {
  const vouched = node.trusted_complete_through === null ? -Infinity : Math.min(node.trusted_complete_through, now);
  return Math.max(iv.last_evidence, vouched);
}

function toInterval(family: Family, resourceId: string, f: FoldInterval, nodes: ReadonlyMap<string, NodeStatus>, now: number): UsageInterval {
  const iv: UsageInterval = {
    family,
    resource_id: resourceId,
    node: f.node,
    hypervisor: f.hypervisor,
    shape: { cpu: f.cpu, mem_bytes: f.mem_bytes, storage_bytes: f.storage_bytes },
    start: iso(f.start),
    end: f.end === null ? null : iso(f.end),
    open_reason: f.open_reason as Reason,
    close_reason: f.close_reason as UsageInterval['close_reason'],
    baseline: f.baseline,
    unconfirmed_end: false,
    start_event_id: f.start_event_id,
    end_event_id: f.end_event_id,
  };
  const node = nodes.get(f.node);
  if (f.end === null && node?.stale) {
    iv.end = iso(staleEnd(f, node, now));
    iv.close_reason = 'stale-node';
    iv.unconfirmed_end = true;
  }
  return iv;
}

/** Runs one resource's billable events (any order) through the machine; sorts `events` in place, changes nothing else. */
export function resourceTimeline(family: Family, resourceId: string, events: FoldEvent[], nodes: ReadonlyMap<string, NodeStatus>, now: number): TimelineResult {
  events.sort(compareFoldEvents);
  const folded = foldTimeline(events);
  return {
    intervals: folded.intervals.map((f) => toInterval(family, resourceId, f, nodes, now)),
    anomalies: folded.anomalies.map((a) => ({ type: a.type, family, resource_id: resourceId, event_id: a.event_id, node: a.node, emitted_at: iso(a.t) })),
  };
}
