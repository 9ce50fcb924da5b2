import type { NodeProgress } from '../layout.js';
import type { PositionStore } from './positions.js';

/**
 * The node progress object (`<prefix>/nodes/<node>.json`) from the shipper's state. Writers not
 * heard of for `forgetWritersAfterMs` are dropped from the state too: short-lived writers (one per
 * CLI invocation) would otherwise grow the map forever.
 */
export function buildNodeProgress(node: string, store: PositionStore, backlogBytes: number, lastShippedEmittedAt: string | undefined, forgetWritersAfterMs: number, now = new Date()): NodeProgress {
  const horizon = new Date(now.getTime() - forgetWritersAfterMs).toISOString();
  return {
    v: 1,
    node,
    reported_at: now.toISOString(),
    // Unknown yet (nothing shipped, never drained): the epoch vouches for nothing. Never beyond this
    // shipper's own clock: a line stamped in the future (a typo'd year) must not vouch for hours to come.
    complete_through: notAfter(store.completeThrough ?? lastShippedEmittedAt ?? new Date(0).toISOString(), now),
    backlog_bytes: backlogBytes,
    writers: store.writerProgress(horizon),
  };
}

/** `iso`, or `now` if `iso` lies after it (ISO UTC strings of one format compare as times). */
export function notAfter(iso: string, now: Date): string {
  const clock = now.toISOString();
  return iso > clock ? clock : iso;
}
