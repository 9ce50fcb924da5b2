/**
 * Contract v2's per-resource machine, as one self-contained fold: the single definition of the
 * interval rules, used by the TypeScript consumer and registered as the `metering_fold` UDF in the
 * SQL engines (a JavaScript scalar function in DuckDB, a JavaScript UDF over ARRAY_AGG in BigQuery).
 *
 * It is written to be shipped as a function body: no imports, no closures over module state, plain
 * numbers and strings only, so `foldTimeline.toString()` is a valid UDF body.
 *
 * Input: one resource's events sorted by (t, node, writer, seq, id). Events with the same t form a
 * tie group, and the order inside it depends on the state before it, which is why this is a fold
 * and not a window expression:
 *   - an interval is open before the group: its stops apply first, then its starts and baselines
 *     (a stop and the next start sharing one `now`: migration, restore, resize);
 *   - nothing is open: its starts and baselines apply first, then its stops (a start and a stop in
 *     the same millisecond make a zero-length interval, never an orphan stop followed by an interval
 *     billed to the watermark).
 *
 *   start/running, nothing open          -> opens an interval on the event's node (`baseline` if running)
 *   start, open on the same node         -> duplicate start (reported; evidence the resource is alive)
 *   running, open on the same node       -> evidence the resource is alive
 *   start/running, open on another node  -> handoff: ends that interval at t ("handoff"), opens one here
 *   stop from the node it was handed off from -> handoff stop (reported, ignored)
 *   stop, open (any other node)          -> closes the interval (the first stop wins)
 *   stop, last event a stop              -> duplicate stop;  stop, nothing seen -> orphan stop
 */

export interface FoldEvent {
  id: string;
  /** emitted_at, epoch ms */
  t: number;
  /** The node of the object the event came from (its `node=` partition). */
  node: string;
  writer: string;
  seq: number;
  phase: 'start' | 'running' | 'stop';
  reason: string;
  hypervisor: string | null;
  cpu: number;
  mem_bytes: number;
  storage_bytes: number;
}

/** An interval the fold produced; `end` null while open. */
export interface FoldInterval {
  start: number;
  node: string;
  hypervisor: string | null;
  cpu: number;
  mem_bytes: number;
  storage_bytes: number;
  open_reason: string;
  baseline: boolean;
  start_event_id: string;
  end: number | null;
  /** The stop's reason, "handoff", or null while open. */
  close_reason: string | null;
  /** The stop that closed it, or the start/baseline that took it over (handoff). */
  end_event_id: string | null;
  /** Latest time the resource was shown alive on this interval's node (its silence can end it). */
  last_evidence: number;
}

export type FoldAnomalyType = 'duplicate_start' | 'duplicate_stop' | 'orphan_stop' | 'handoff_stop';

export interface FoldAnomaly {
  type: FoldAnomalyType;
  event_id: string;
  node: string;
  t: number;
}

/**
 * What the machine remembers after a resource's events: enough to go on with later events without
 * replaying the history (the incremental engine keeps it per resource). Only the open interval can
 * still change; closed ones are final for the same events.
 */
export interface FoldState {
  open: FoldInterval | null;
  /** The node the open interval (or the last closed one) was handed off from: its late stop is expected. */
  handed_from: string | null;
  last_was_stop: boolean;
}

export interface FoldResult {
  /** Every interval, in start order; at most the last one is open. Resumed: the open one it started with comes first. */
  intervals: FoldInterval[];
  anomalies: FoldAnomaly[];
  state: FoldState;
}

/**
 * Folds one resource's sorted events into intervals and anomalies. Pure. `initial` resumes from a
 * state an earlier fold returned; every event must then be later (strictly) than those folded
 * before, since a tie group cannot be split.
 */
export function foldTimeline(events: readonly FoldEvent[], initial?: FoldState | null): FoldResult {
  const intervals: FoldInterval[] = [];
  const anomalies: FoldAnomaly[] = [];
  let open: FoldInterval | null = null;
  let handedFrom: string | null = null;
  let lastWasStop = false;
  if (initial) {
    if (initial.open) {
      open = Object.assign({}, initial.open);
      intervals.push(open);
    }
    handedFrom = initial.handed_from;
    lastWasStop = initial.last_was_stop;
  }

  function openOn(e: FoldEvent): FoldInterval {
    const iv: FoldInterval = {
      start: e.t,
      node: e.node,
      hypervisor: e.hypervisor,
      cpu: e.cpu,
      mem_bytes: e.mem_bytes,
      storage_bytes: e.storage_bytes,
      open_reason: e.reason,
      baseline: e.phase === 'running',
      start_event_id: e.id,
      end: null,
      close_reason: null,
      end_event_id: null,
      last_evidence: e.t,
    };
    intervals.push(iv);
    return iv;
  }

  function apply(e: FoldEvent): void {
    if (e.phase === 'stop') {
      if (open !== null && e.node !== open.node && e.node === handedFrom) {
        anomalies.push({ type: 'handoff_stop', event_id: e.id, node: e.node, t: e.t });
      } else if (open !== null) {
        open.end = e.t;
        open.close_reason = e.reason;
        open.end_event_id = e.id;
        open = null;
      } else if (e.node === handedFrom) {
        anomalies.push({ type: 'handoff_stop', event_id: e.id, node: e.node, t: e.t });
      } else {
        anomalies.push({ type: lastWasStop ? 'duplicate_stop' : 'orphan_stop', event_id: e.id, node: e.node, t: e.t });
      }
      lastWasStop = true;
      return;
    }
    lastWasStop = false;
    if (open === null) {
      handedFrom = null;
      open = openOn(e);
      return;
    }
    if (e.node !== open.node) {
      open.end = e.t;
      open.close_reason = 'handoff';
      open.end_event_id = e.id;
      handedFrom = open.node;
      open = openOn(e);
      return;
    }
    if (e.phase === 'start') anomalies.push({ type: 'duplicate_start', event_id: e.id, node: e.node, t: e.t });
    open.last_evidence = e.t;
  }

  let i = 0;
  while (i < events.length) {
    let j = i + 1;
    while (j < events.length && events[j]!.t === events[i]!.t) j++;
    if (j === i + 1) {
      apply(events[i]!);
    } else {
      const stopsFirst = open !== null;
      for (let pass = 0; pass < 2; pass++) {
        const wantStops = stopsFirst ? pass === 0 : pass === 1;
        for (let k = i; k < j; k++) if ((events[k]!.phase === 'stop') === wantStops) apply(events[k]!);
      }
    }
    i = j;
  }
  return { intervals, anomalies, state: { open, handed_from: handedFrom, last_was_stop: lastWasStop } };
}

/** The order the fold expects: emitted_at, then node, writer, seq, id. */
export function compareFoldEvents(a: FoldEvent, b: FoldEvent): number {
  if (a.t !== b.t) return a.t - b.t;
  if (a.node !== b.node) return a.node < b.node ? -1 : 1;
  if (a.writer !== b.writer) return a.writer < b.writer ? -1 : 1;
  if (a.seq !== b.seq) return a.seq - b.seq;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}
