/**
 * The per-resource interval state machine. Events of one resource (family + id), in the order of
 * compareEvents, move it between three states: nothing seen, last event a stop, open.
 *
 *   start / running, nothing open   -> opens an interval (a running one is flagged `baseline`)
 *   start, open                     -> duplicate start (reported, ignored; still evidence of life)
 *   running, open                   -> confirms the resource is alive (moves its last evidence)
 *   stop, open                      -> closes the interval (the first stop wins)
 *   stop, last event a stop         -> duplicate stop (reported, never billed)
 *   stop, nothing seen              -> orphan stop (reported, never billed)
 *
 * The state after an event depends only on that event's phase, which is what lets the SQL twin
 * express the same machine with window functions (see sink/sql/).
 */
import { describeKind, type Family } from '../../src/index.js';
import { iso, type TimelineAnomaly, type TimelineEvent, type UsageInterval } from './types.js';

/** An interval that has been opened and not (yet) closed by a stop. */
export interface OpenState {
  opener: TimelineEvent;
  /** Latest event time that shows the resource alive (opener, baselines, duplicate starts). */
  lastEvidence: number;
  /** Node that sent that evidence: its silence is what can end the interval. */
  lastEvidenceNode: string;
}

/** Where the machine stands after a prefix of the timeline. */
export interface TimelineState {
  open: OpenState | null;
  /** The last event was a stop (a further stop is a duplicate, not an orphan). */
  lastWasStop: boolean;
}

export const INITIAL_STATE: TimelineState = { open: null, lastWasStop: false };

export interface TimelineResult {
  closed: UsageInterval[];
  anomalies: TimelineAnomaly[];
  state: TimelineState;
}

function intervalFrom(family: Family, resourceId: string, open: OpenState): UsageInterval {
  const o = open.opener;
  return {
    family,
    resource_id: resourceId,
    node: o.node,
    hypervisor: o.hypervisor,
    shape: { cpu: o.cpu, mem_bytes: o.mem_bytes, storage_bytes: o.storage_bytes },
    start: iso(o.t),
    end: null,
    open_reason: o.reason,
    close_reason: null,
    baseline: describeKind(o.kind)?.phase === 'running',
    unconfirmed_end: false,
    start_event_id: o.id,
    end_event_id: null,
  };
}

/** Runs sorted, de-duplicated events of one resource from `from`. Pure: the inputs are not modified. */
export function runTimeline(family: Family, resourceId: string, from: TimelineState, events: readonly TimelineEvent[]): TimelineResult {
  let open = from.open ? { ...from.open } : null;
  let lastWasStop = from.lastWasStop;
  const closed: UsageInterval[] = [];
  const anomalies: TimelineAnomaly[] = [];
  const anomaly = (type: TimelineAnomaly['type'], e: TimelineEvent): void => {
    anomalies.push({ type, family, resource_id: resourceId, event_id: e.id, node: e.node, emitted_at: iso(e.t) });
  };
  for (const e of events) {
    const phase = describeKind(e.kind)?.phase;
    if (phase === 'stop') {
      if (open) {
        closed.push({ ...intervalFrom(family, resourceId, open), end: iso(e.t), close_reason: e.reason, end_event_id: e.id });
        open = null;
      } else {
        anomaly(lastWasStop ? 'duplicate_stop' : 'orphan_stop', e);
      }
      lastWasStop = true;
      continue;
    }
    lastWasStop = false;
    if (!open) {
      open = { opener: e, lastEvidence: e.t, lastEvidenceNode: e.node };
      continue;
    }
    if (phase === 'start') anomaly('duplicate_start', e);
    // Events are in time order, so this one is the latest evidence the resource is alive.
    open.lastEvidence = e.t;
    open.lastEvidenceNode = e.node;
  }
  return { closed, anomalies, state: { open, lastWasStop } };
}

/** The interval record of a still-open state (end null), for output and hour splitting. */
export function openInterval(family: Family, resourceId: string, open: OpenState): UsageInterval {
  return intervalFrom(family, resourceId, open);
}
