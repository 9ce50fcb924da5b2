/**
 * Bounded memory: events older than the horizon (watermark - retain) are folded into their
 * resource's checkpoint; the closed intervals they made are frozen. Exact for everything that
 * arrives in time; a later entry before the horizon is "too late" (see ingest.ts).
 */
import { runTimeline } from './resource-timeline.js';
import type { ConsumerState } from './state-store.js';

/** Folds every event before `horizon` into its resource's checkpoint (bounded memory). */
export function compact(state: ConsumerState, horizon: number): void {
  if (state.horizon !== null && horizon <= state.horizon) return;
  for (const [key, r] of Object.entries(state.resources)) {
    let cut = 0;
    while (cut < r.events.length && r.events[cut]!.t < horizon) cut++;
    if (cut > 0) {
      const folded = runTimeline(r.family, r.resource_id, r.base, r.events.slice(0, cut));
      state.frozen_intervals.push(...folded.closed);
      state.frozen_anomalies.push(...folded.anomalies);
      r.base = folded.state;
      r.events = r.events.slice(cut);
    }
    if (r.events.length === 0 && r.base.open === null) delete state.resources[key];
  }
  state.horizon = horizon;
}
