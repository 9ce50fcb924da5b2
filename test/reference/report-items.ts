/** How the reference model fills report.json's lists: capped items, exact counts, a stable order. */
import { MAX_FINDINGS, type NodeStatus } from '../../sink/consumer/findings.js';
import type { Counted, ReportedNode } from '../../sink/consumer/report.js';
import type { TimelineAnomaly } from '../../sink/consumer/types.js';

export function reportedNode({ trusted_complete_through: _, ...shown }: NodeStatus): ReportedNode {
  return shown;
}

export function counted<T>(items: readonly T[], count = items.length): Counted<T> {
  return { count, items: items.slice(0, MAX_FINDINGS) };
}

export function anomaliesOf(all: readonly TimelineAnomaly[], type: TimelineAnomaly['type']): Counted<TimelineAnomaly> {
  const items = all.filter((a) => a.type === type).sort((a, b) => (a.emitted_at < b.emitted_at ? -1 : a.emitted_at > b.emitted_at ? 1 : a.event_id < b.event_id ? -1 : a.event_id > b.event_id ? 1 : 0));
  return counted(items);
}
