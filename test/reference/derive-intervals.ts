/** The intervals of the current state: every resource's billable events replayed through the machine. */
import type { ResourceEvents } from './entry-verdicts.js';
import { resourceTimeline } from './resource-timeline.js';
import type { NodeStatus } from '../../sink/consumer/findings.js';
import type { TimelineAnomaly, UsageInterval } from '../../sink/consumer/types.js';

function compareIntervals(a: UsageInterval, b: UsageInterval): number {
  const ka = [a.family, a.resource_id, a.start, a.start_event_id];
  const kb = [b.family, b.resource_id, b.start, b.start_event_id];
  for (let i = 0; i < ka.length; i++) if (ka[i] !== kb[i]) return ka[i]! < kb[i]! ? -1 : 1;
  return 0;
}

/** Intervals of every resource, sorted by family, resource, start; open ones of a stale node get their derived end. */
export function deriveIntervals(resources: Iterable<ResourceEvents>, nodes: ReadonlyMap<string, NodeStatus>, now: number): { intervals: UsageInterval[]; anomalies: TimelineAnomaly[] } {
  const intervals: UsageInterval[] = [];
  const anomalies: TimelineAnomaly[] = [];
  for (const r of resources) {
    const res = resourceTimeline(r.family, r.resource_id, r.events, nodes, now);
    for (const iv of res.intervals) intervals.push(iv);
    for (const a of res.anomalies) anomalies.push(a);
  }
  intervals.sort(compareIntervals);
  return { intervals, anomalies };
}
