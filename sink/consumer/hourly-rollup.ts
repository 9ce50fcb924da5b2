/**
 * Intervals -> hourly totals, one per (hour, family, resource, node, hypervisor, shape). A closed
 * interval counts up to its end; an open one up to the watermark (what is known to be complete).
 * Integer milliseconds only: the billing products (cpu x ms, bytes x ms) are left to the reader,
 * who can do them exactly (see usage.ts).
 */
import type { Family } from '../../src/index.js';
import { splitByHour } from './hour-split.js';
import type { UsageInterval } from './types.js';

export interface HourlyTotal {
  hour: number;
  family: Family;
  resource_id: string;
  node: string;
  hypervisor: string | null;
  cpu: number;
  mem_bytes: number;
  storage_bytes: number;
  ms: number;
}

type RowIdentity = Omit<HourlyTotal, 'ms' | 'hour'>;

/** Everything but the hour and the value; computed once per interval, not once per hour. */
export function identityKey(r: RowIdentity): string {
  return JSON.stringify([r.family, r.resource_id, r.node, r.hypervisor, r.cpu, r.mem_bytes, r.storage_bytes]);
}

/** The identity of a row: `<hour epoch ms>|<identity>`. */
export const rowKey = (hour: number, identity: string): string => `${hour}|${identity}`;

export function rowFromKey(key: string): Omit<HourlyTotal, 'ms'> {
  const bar = key.indexOf('|');
  const [family, resource_id, node, hypervisor, cpu, mem_bytes, storage_bytes] = JSON.parse(key.slice(bar + 1)) as [Family, string, string, string | null, number, number, number];
  return { hour: Number(key.slice(0, bar)), family, resource_id, node, hypervisor, cpu, mem_bytes, storage_bytes };
}

/** The part of an interval that is billed now: [start, end) or, while open, [start, watermark). */
export function billedRange(interval: UsageInterval, watermark: number): [number, number] {
  const start = Date.parse(interval.start);
  const end = interval.end !== null ? Date.parse(interval.end) : watermark;
  return [start, end];
}

export function hourlyTotals(intervals: Iterable<UsageInterval>, watermark: number): Map<string, HourlyTotal> {
  const rows = new Map<string, HourlyTotal>();
  for (const iv of intervals) {
    const [start, end] = billedRange(iv, watermark);
    const slices = splitByHour(start, end);
    if (slices.length === 0) continue;
    const id: RowIdentity = { family: iv.family, resource_id: iv.resource_id, node: iv.node, hypervisor: iv.hypervisor, ...iv.shape };
    const idKey = identityKey(id);
    for (const { hour, ms } of slices) {
      const key = rowKey(hour, idKey);
      const row = rows.get(key);
      if (row) row.ms += ms;
      else rows.set(key, { hour, ...id, ms });
    }
  }
  return rows;
}
