/**
 * Usage totals from hourly rows: vCPU-hours and GiB-hours of memory from `vm.compute` rows,
 * GiB-hours of storage from `vm.storage` and `snap.storage` rows (a compute event's storage_bytes
 * is not billed twice). Sums are exact BigInt products of integers (cpu x ms, bytes x ms); only
 * the display divides, rounding half up.
 */
import type { HourlyRow } from './types.js';
import { HOUR_MS } from './types.js';

export type UsageGroupBy = 'resource' | 'node' | 'hypervisor';
export const USAGE_GROUPS: readonly UsageGroupBy[] = ['resource', 'node', 'hypervisor'];

/** Exact integer totals of one group. */
export interface UsageTotals {
  /** sum of cpu x ms */
  cpu_ms: bigint;
  /** sum of mem_bytes x ms */
  mem_byte_ms: bigint;
  /** sum of storage_bytes x ms */
  storage_byte_ms: bigint;
  /** Some of it comes from hours not yet final. */
  provisional: boolean;
}

export interface UsageLine extends UsageTotals {
  /** resource id, node or hypervisor ("-" when a row has none) */
  key: string;
  /** For `by: resource`: vm or snapshot. */
  kind: 'vm' | 'snapshot' | null;
}

export interface UsageHour extends UsageTotals {
  hour: string;
}

export interface UsageTable {
  by: UsageGroupBy;
  /** ISO; rows whose hour starts in [from, to). null: unbounded. */
  from: string | null;
  to: string | null;
  lines: UsageLine[];
  total: UsageTotals;
  /** Per hour, for the chart. */
  hours: UsageHour[];
}

export interface UsageOptions {
  by?: UsageGroupBy;
  /** Include hours starting at or after this time (floored to the hour). */
  from?: Date | number | null;
  /** Include hours starting before this time. */
  to?: Date | number | null;
}

const empty = (): UsageTotals => ({ cpu_ms: 0n, mem_byte_ms: 0n, storage_byte_ms: 0n, provisional: false });

function add(t: UsageTotals, r: HourlyRow): void {
  const ms = BigInt(r.ms);
  if (r.family === 'vm.compute') {
    t.cpu_ms += BigInt(r.cpu) * ms;
    t.mem_byte_ms += BigInt(r.mem_bytes) * ms;
  } else {
    t.storage_byte_ms += BigInt(r.storage_bytes) * ms;
  }
  if (!r.final && r.ms > 0) t.provisional = true;
}

const toMs = (d: Date | number | null | undefined): number | null => (d === null || d === undefined ? null : d instanceof Date ? d.getTime() : d);

export function computeUsage(rows: readonly HourlyRow[], options: UsageOptions = {}): UsageTable {
  const by = options.by ?? 'resource';
  const fromRaw = toMs(options.from);
  const from = fromRaw === null ? null : Math.floor(fromRaw / HOUR_MS) * HOUR_MS;
  const to = toMs(options.to);
  const groups = new Map<string, UsageLine>();
  const hours = new Map<string, UsageHour>();
  const total = empty();
  for (const r of rows) {
    const h = Date.parse(r.hour);
    if ((from !== null && h < from) || (to !== null && h >= to) || r.ms === 0) continue;
    const kind = by === 'resource' ? (r.family === 'snap.storage' ? 'snapshot' : 'vm') : null;
    const key = by === 'resource' ? r.resource_id : by === 'node' ? r.node : (r.hypervisor ?? '-');
    const gk = `${kind ?? ''}\u0000${key}`;
    let line = groups.get(gk);
    if (!line) groups.set(gk, (line = { key, kind, ...empty() }));
    add(line, r);
    let hour = hours.get(r.hour);
    if (!hour) hours.set(r.hour, (hour = { hour: r.hour, ...empty() }));
    add(hour, r);
    add(total, r);
  }
  const lines = [...groups.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : (a.kind ?? '') < (b.kind ?? '') ? -1 : 1));
  return {
    by,
    from: from === null ? null : new Date(from).toISOString(),
    to: to === null ? null : new Date(to).toISOString(),
    lines,
    total,
    hours: [...hours.values()].sort((a, b) => (a.hour < b.hour ? -1 : 1)),
  };
}

const GIB = 1024n ** 3n;
const HOUR = BigInt(HOUR_MS);

/** n / d as a decimal string with `decimals` places, rounded half up (n, d >= 0). */
export function formatRatio(n: bigint, d: bigint, decimals = 3): string {
  const scale = 10n ** BigInt(decimals);
  const q = (n * scale * 2n + d) / (2n * d);
  const whole = q / scale;
  const frac = (q % scale).toString().padStart(decimals, '0');
  return decimals > 0 ? `${whole}.${frac}` : `${whole}`;
}

export const vcpuHours = (t: UsageTotals, decimals = 3): string => formatRatio(t.cpu_ms, HOUR, decimals);
export const memGibHours = (t: UsageTotals, decimals = 3): string => formatRatio(t.mem_byte_ms, GIB * HOUR, decimals);
export const storageGibHours = (t: UsageTotals, decimals = 3): string => formatRatio(t.storage_byte_ms, GIB * HOUR, decimals);

/** The human table: one line per group, a total, and a note when provisional hours are included. */
export function formatUsageTable(table: UsageTable, watermark?: string): string {
  const head = [table.by === 'resource' ? 'RESOURCE' : table.by.toUpperCase(), ...(table.by === 'resource' ? ['KIND'] : []), 'vCPU-HOURS', 'MEM GiB-HOURS', 'STORAGE GiB-HOURS', ''];
  const row = (label: string, kind: string | null, t: UsageTotals): string[] => [
    label,
    ...(table.by === 'resource' ? [kind ?? ''] : []),
    vcpuHours(t),
    memGibHours(t),
    storageGibHours(t),
    t.provisional ? '*' : '',
  ];
  const body = table.lines.map((l) => row(l.key, l.kind, l));
  const rows = [head, ...body, row('TOTAL', table.by === 'resource' ? '' : null, table.total)];
  const widths = head.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const numeric = (i: number): boolean => i >= head.length - 4 && i < head.length - 1;
  const fmt = (r: string[]): string => r.map((c, i) => (numeric(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd();
  const rule = widths.map((w) => '-'.repeat(w)).join('  ').trimEnd();
  const range = `${table.from ?? 'the beginning'} to ${table.to ?? 'now'}`;
  const lines = [`Usage by ${table.by}, hours from ${range}`, '', fmt(head), rule, ...body.map(fmt), rule, fmt(rows[rows.length - 1]!)];
  if (table.total.provisional) lines.push('', `* includes provisional hours (after the watermark${watermark ? ` ${watermark}` : ''}); they may still change.`);
  if (table.lines.length === 0) lines.push('', 'No usage in this range.');
  return lines.join('\n') + '\n';
}
