/**
 * Publication of hourly rows. An hour wholly before the watermark is final: its rows are published
 * with version 1 and never silently change. If later evidence (a stale node coming back, a late
 * object) changes a final row, the row is re-emitted with version + 1, `revises` = the old version
 * and `previous_ms` = the old value; a final row that disappears is re-emitted with ms 0; a row
 * that appears in an hour already final is version 1 revising version 0 (nothing). Provisional rows
 * (hours not yet final) have version 0. Unchanged final rows keep their version forever.
 */
import { rowFromKey, type HourlyTotal } from './hourly-rollup.js';
import type { PublishedRow } from './state-store.js';
import { HOUR_MS, iso, type HourlyRow } from './types.js';

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

/**
 * Compares this run's totals with what was published; updates `published` in place.
 * `previousWatermark` tells which hours were already final before this run.
 */
export function publish(totals: Map<string, HourlyTotal>, published: Record<string, PublishedRow>, watermark: number, previousWatermark: number | null): PublicationResult {
  const isFinal = (hour: number): boolean => hour + HOUR_MS <= watermark;
  const wasFinal = (hour: number): boolean => previousWatermark !== null && hour + HOUR_MS <= previousWatermark;
  const rows: HourlyRow[] = [];
  const revisions: HourlyRow[] = [];
  for (const [key, t] of totals) {
    if (!isFinal(t.hour)) {
      rows.push(toRow(t, false, null));
      continue;
    }
    const before = published[key];
    let now: PublishedRow;
    if (before === undefined) {
      now = wasFinal(t.hour) ? { version: 1, ms: t.ms, revises: 0, previous_ms: 0 } : { version: 1, ms: t.ms, revises: null, previous_ms: null };
    } else if (before.ms !== t.ms) {
      now = { version: before.version + 1, ms: t.ms, revises: before.version, previous_ms: before.ms };
    } else {
      now = before;
    }
    published[key] = now;
    const row = toRow(t, true, now);
    rows.push(row);
    if (now !== before && now.revises !== null) revisions.push(row);
  }
  // Final rows no longer backed by any interval: withdraw them explicitly (ms 0), never drop them.
  for (const [key, before] of Object.entries(published)) {
    if (totals.has(key)) continue;
    let now = before;
    if (before.ms !== 0) {
      now = { version: before.version + 1, ms: 0, revises: before.version, previous_ms: before.ms };
      published[key] = now;
    }
    const row = toRow({ ...rowFromKey(key), ms: 0 }, true, now);
    rows.push(row);
    if (now !== before) revisions.push(row);
  }
  rows.sort(compareRows);
  revisions.sort(compareRows);
  return { rows, revisions };
}

export function compareRows(a: HourlyRow, b: HourlyRow): number {
  const ka: (string | number)[] = [a.hour, a.family, a.resource_id, a.node, a.hypervisor ?? '', a.cpu, a.mem_bytes, a.storage_bytes];
  const kb: (string | number)[] = [b.hour, b.family, b.resource_id, b.node, b.hypervisor ?? '', b.cpu, b.mem_bytes, b.storage_bytes];
  for (let i = 0; i < ka.length; i++) {
    const x = ka[i]!;
    const y = kb[i]!;
    if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}
