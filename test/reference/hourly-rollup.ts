/**
 * Intervals -> hourly totals, one per (hour, family, resource, node, hypervisor, shape). A closed
 * interval counts up to its end; an open one up to the watermark (what is known to be complete).
 * Integer milliseconds only: the billing products (cpu x ms, bytes x ms) are left to the reader,
 * who can do them exactly (see usage.ts).
 */
import type { Family } from '../../src/index.js';
import { splitByHour } from '../../sink/consumer/hour-split.js';
import type { UsageInterval } from '../../sink/consumer/types.js';

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

// Tab: a control character (never in an id), below every printable one, and JSON escapes it in 2 bytes.
const SEP = '\t';
const NAMED = '\n'; // marks a hypervisor name; a null hypervisor (empty) sorts first
/** A non-negative integer as text that sorts numerically: its digit count (2 digits), then the digits. */
const ord = (n: number): string => {
  const d = String(n);
  return `${String(d.length).padStart(2, '0')}${d}`;
};

/**
 * Everything but the hour and the value, computed once per interval (not once per hour). The key
 * sorts like the tuple (family, resource_id, node, hypervisor, cpu, mem_bytes, storage_bytes):
 * tab separators (ids cannot contain control characters), length-prefixed numbers, and a null
 * hypervisor before any name.
 */
export function identityKey(r: RowIdentity): string {
  return [r.family, r.resource_id, r.node, r.hypervisor === null ? '' : `${NAMED}${r.hypervisor}`, ord(r.cpu), ord(r.mem_bytes), ord(r.storage_bytes)].join(SEP);
}

/** The identity of a row; plain string order of keys is output order (hour first). */
export const rowKey = (hour: number, identity: string): string => `${ord(hour)}${SEP}${identity}`;

export function rowFromKey(key: string): Omit<HourlyTotal, 'ms'> {
  const [hour, family, resource_id, node, hv, cpu, mem_bytes, storage_bytes] = key.split(SEP) as [string, Family, string, string, string, string, string, string];
  const num = (x: string): number => Number(x.slice(2));
  return { hour: num(hour), family, resource_id, node, hypervisor: hv === '' ? null : hv.slice(1), cpu: num(cpu), mem_bytes: num(mem_bytes), storage_bytes: num(storage_bytes) };
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
