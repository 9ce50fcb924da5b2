/** The intervals of the current state: frozen ones plus a replay of every retained timeline. */
import { openInterval, runTimeline } from './resource-timeline.js';
import type { ConsumerState } from './state-store.js';
import { iso, type TimelineAnomaly, type UsageInterval } from './types.js';
import type { NodeStatus } from './watermark.js';

function compareIntervals(a: UsageInterval, b: UsageInterval): number {
  const ka = [a.family, a.resource_id, a.start, a.start_event_id];
  const kb = [b.family, b.resource_id, b.start, b.start_event_id];
  for (let i = 0; i < ka.length; i++) if (ka[i] !== kb[i]) return ka[i]! < kb[i]! ? -1 : 1;
  return 0;
}

/** Intervals of every retained resource; open ones of a stale node end at their last evidence. */
export function deriveIntervals(state: ConsumerState, nodes: Map<string, NodeStatus>, now: number): { intervals: UsageInterval[]; anomalies: TimelineAnomaly[] } {
  const intervals: UsageInterval[] = [...state.frozen_intervals];
  const anomalies: TimelineAnomaly[] = [...state.frozen_anomalies];
  for (const r of Object.values(state.resources)) {
    const res = runTimeline(r.family, r.resource_id, r.base, r.events);
    intervals.push(...res.closed);
    anomalies.push(...res.anomalies);
    const open = res.state.open;
    if (!open) continue;
    const iv = openInterval(r.family, r.resource_id, open);
    const node = nodes.get(open.lastEvidenceNode);
    if (node?.stale) {
      // The node's last report vouches for everything it wrote before complete_through: no stop among them.
      const vouched = node.complete_through !== null ? Math.min(Date.parse(node.complete_through), now) : -Infinity;
      iv.end = iso(Math.max(open.lastEvidence, vouched));
      iv.close_reason = 'stale-node';
      iv.unconfirmed_end = true;
    }
    intervals.push(iv);
  }
  intervals.sort(compareIntervals);
  return { intervals, anomalies };
}
