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
    // Unknown yet (nothing shipped, never drained): the epoch vouches for nothing.
    complete_through: store.completeThrough ?? lastShippedEmittedAt ?? new Date(0).toISOString(),
    backlog_bytes: backlogBytes,
    writers: store.writerProgress(horizon),
  };
}
