/**
 * Publication of hourly rows. An hour wholly before the watermark is final: its rows are published
 * with version 1 and never silently change. If later evidence (a stale node coming back, a late
 * object) changes a final row, the row is re-emitted with version + 1, `revises` = the old version
 * and `previous_ms` = the old value; a final row that disappears is re-emitted with ms 0; a row
 * that appears in an hour already final is version 1 revising version 0 (nothing). Provisional rows
 * (hours not yet final) have version 0. Unchanged final rows keep their version forever.
 */
import { rowFromKey, type HourlyTotal } from './hourly-rollup.js';
import { publishedRow, type PublishedRow, type PublishedValue } from './state-store.js';
import { HOUR_MS, iso, type HourlyRow } from '../../sink/consumer/types.js';

export interface PublicationResult {
  /** Every row in its current version, sorted. */
  rows: HourlyRow[];
  /** Rows that changed an hour already published final, in this run. */
  revisions: HourlyRow[];
}

function toRow(t: HourlyTotal, final: boolean, p: PublishedRow | null): HourlyRow {
  return {
    hour: iso(t.hour),
    family: t.family,
    resource_id: t.resource_id,
    node: t.node,
    hypervisor: t.hypervisor,
    cpu: t.cpu,
    mem_bytes: t.mem_bytes,
    storage_bytes: t.storage_bytes,
    ms: t.ms,
    final,
    version: p ? p.version : 0,
    revises: p ? p.revises : null,
    previous_ms: p ? p.previous_ms : null,
  };
}

/** Plain numbers are the common case (version 1, never revised): they keep the state small. */
function compact(p: PublishedRow): PublishedValue {
  return p.version === 1 && p.revises === null ? p.ms : p;
}

/**
 * Compares this run's totals with what was published; updates `published` in place.
 * `previousWatermark` tells which hours were already final before this run.
 */
export function publish(totals: Map<string, HourlyTotal>, published: Map<string, PublishedValue>, watermark: number, previousWatermark: number | null): PublicationResult {
  const isFinal = (hour: number): boolean => hour + HOUR_MS <= watermark;
  const wasFinal = (hour: number): boolean => previousWatermark !== null && hour + HOUR_MS <= previousWatermark;
  // Row keys sort in output order; final rows no longer backed by any interval are kept too.
  const keys = [...totals.keys()];
  for (const key of published.keys()) if (!totals.has(key)) keys.push(key);
  keys.sort();
  const rows: HourlyRow[] = [];
  const revisions: HourlyRow[] = [];
  for (const key of keys) {
    const t = totals.get(key);
    if (t === undefined) {
      // Withdraw explicitly (ms 0), never drop: a billing system may have imported it.
      const before = publishedRow(published.get(key)!);
      let now = before;
      if (before.ms !== 0) {
        now = { version: before.version + 1, ms: 0, revises: before.version, previous_ms: before.ms };
        published.set(key, compact(now));
      }
      const row = toRow({ ...rowFromKey(key), ms: 0 }, true, now);
      rows.push(row);
      if (now !== before) revisions.push(row);
      continue;
    }
    if (!isFinal(t.hour)) {
      rows.push(toRow(t, false, null));
      continue;
    }
    const stored = published.get(key);
    const before = stored === undefined ? undefined : publishedRow(stored);
    let now: PublishedRow;
    if (before === undefined) {
      now = wasFinal(t.hour) ? { version: 1, ms: t.ms, revises: 0, previous_ms: 0 } : { version: 1, ms: t.ms, revises: null, previous_ms: null };
    } else if (before.ms !== t.ms) {
      now = { version: before.version + 1, ms: t.ms, revises: before.version, previous_ms: before.ms };
    } else {
      now = before;
    }
    const row = toRow(t, true, now);
    rows.push(row);
    if (now !== before) {
      published.set(key, compact(now));
      if (now.revises !== null) revisions.push(row);
    }
  }
  return { rows, revisions };
}
