/**
 * A self-contained HTML usage report for billing and capacity people: the table, and per metric an
 * hourly chart of the average amount in use, stacked by the `--by` group, with the watermark drawn
 * where final hours end and provisional ones begin. Inline SVG and CSS only (no scripts, fonts or
 * anything from elsewhere), so it can be mailed or archived as one file.
 */
import * as path from 'node:path';
import { HOUR_MS, type HourlyRow } from './types.js';
import { computeUsage, formatRatio, memGibHours, storageGibHours, vcpuHours, type UsageLine, type UsageTable, type UsageTotals } from './usage.js';

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

const GIB = 1024n ** 3n;
const HOUR = BigInt(HOUR_MS);
/** Charts with more groups than this show the largest ones and one "others" band. */
export const MAX_CHART_GROUPS = 20;
/** Longest time axis drawn (the table still covers the whole range). */
const MAX_HOURS = 24 * 400;
// Tableau 10 without its grey (kept for "others"), then darker shades of distinct hues.
const PALETTE = ['#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#b07aa1', '#edc948', '#76b7b2', '#ff9da7', '#9c755f', '#1f3f73', '#b35806', '#2d6a2e', '#9e1b1b', '#5b2c83', '#8a6d00', '#1f6f6a', '#ad1457', '#5d4037', '#37474f', '#7cb342'];
const OTHERS_COLOR = '#bab0ac';

interface Metric {
  id: 'cpu' | 'memory' | 'storage';
  title: string;
  /** Unit of the average amount in use during an hour (what one hour of the chart shows). */
  unit: string;
  /** The hour's total (vCPU-ms, byte-ms) as the average amount in use over that hour. */
  average: (t: UsageTotals) => number;
  /** The exact total for tooltips and the table. */
  total: (t: UsageTotals) => string;
  totalUnit: string;
}

const METRICS: Metric[] = [
  { id: 'cpu', title: 'Average vCPUs in use, per hour', unit: 'vCPUs', average: (t) => Number(formatRatio(t.cpu_ms, HOUR, 6)), total: (t) => vcpuHours(t), totalUnit: 'vCPU-hours' },
  { id: 'memory', title: 'Average memory in use (GiB), per hour', unit: 'GiB', average: (t) => Number(formatRatio(t.mem_byte_ms, GIB * HOUR, 6)), total: (t) => memGibHours(t), totalUnit: 'memory GiB-hours' },
  { id: 'storage', title: 'Average storage allocated (GiB), per hour', unit: 'GiB', average: (t) => Number(formatRatio(t.storage_byte_ms, GIB * HOUR, 6)), total: (t) => storageGibHours(t), totalUnit: 'storage GiB-hours' },
];

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const pad = (n: number): string => String(n).padStart(2, '0');
const dayText = (d: Date): string => `${d.getUTCDate()} ${MONTHS[d.getUTCMonth()]} ${d.getUTCFullYear()}`;
const clockText = (d: Date): string => `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`;
/** "20 Nov 2026 14:00 UTC": what a person reads, not 2026-11-20T14:00:00.000Z. */
export function humanTime(t: string | number | Date): string {
  const d = new Date(t);
  return `${dayText(d)} ${clockText(d)} UTC`;
}
const hourRange = (t: number): string => `${humanTime(t).replace(/ UTC$/, '')}–${clockText(new Date(t + HOUR_MS))} UTC`;

/** Where the data came from, without local absolute paths: a bucket URL as is, a directory by its name. */
export function describeSource(source: string): string {
  if (!source) return '';
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(source) && !source.startsWith('file://')) return source.replace(/\/\/[^@/]*@/, '//');
  const dir = source.startsWith('file://') ? new URL(source).pathname : source;
  return `local bucket directory “${path.basename(path.resolve(dir))}”`;
}

/** Round tick steps (1, 2, 2.5, 5 x 10^k) giving about `target` gridlines up to `max`. */
export function niceTicks(max: number, target = 5): number[] {
  if (!(max > 0)) return [0, 1];
  const raw = max / target;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw)!;
  const ticks: number[] = [];
  for (let v = 0; v < max + step * 0.999; v += step) ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

const tickText = (v: number): string => (Number.isInteger(v) ? String(v) : v.toFixed(v < 1 ? 2 : 1).replace(/0+$/, '').replace(/\.$/, ''));

/** Hour label step: the smallest of 1, 2, 3, 6, 12 h, 1, 2, 7, 14, 28 days giving at most ~12 labels. */
function labelStepHours(hours: number): number {
  return [1, 2, 3, 6, 12, 24, 48, 168, 336, 672].find((s) => hours / s <= 12) ?? 1344;
}

interface Group {
  key: string;
  label: string;
  color: string;
  /** Usage per hour (ISO hour -> totals). */
  perHour: Map<string, UsageTotals>;
}

const groupId = (l: Pick<UsageLine, 'key' | 'kind'>): string => `${l.kind ?? ''}\u0000${l.key}`;

/** Every hour the chart shows: the --from/--to range when given, else first to last hour with usage. */
function chartHours(table: UsageTable): { hours: number[]; truncated: boolean } {
  const withUsage = table.hours.map((h) => Date.parse(h.hour));
  const start = table.from !== null ? Date.parse(table.from) : withUsage[0];
  const endExclusive = table.to !== null ? Math.ceil(Date.parse(table.to) / HOUR_MS) * HOUR_MS : withUsage.length ? withUsage[withUsage.length - 1]! + HOUR_MS : undefined;
  if (start === undefined || endExclusive === undefined || endExclusive <= start) return { hours: [], truncated: false };
  const hours: number[] = [];
  for (let t = start; t < endExclusive && hours.length < MAX_HOURS; t += HOUR_MS) hours.push(t);
  return { hours, truncated: hours.length === MAX_HOURS && start + MAX_HOURS * HOUR_MS < endExclusive };
}

/** The table's groups with their usage per hour (the largest MAX_CHART_GROUPS - 1 by name, the rest as "others"). */
function chartGroups(table: UsageTable, rows: readonly HourlyRow[]): Group[] {
  const perHour = new Map<string, Map<string, UsageTotals>>();
  const byHour = new Map<string, HourlyRow[]>();
  for (const r of rows) {
    let list = byHour.get(r.hour);
    if (!list) byHour.set(r.hour, (list = []));
    list.push(r);
  }
  for (const [hour, hourRows] of byHour) {
    const sub = computeUsage(hourRows, { by: table.by, from: table.from === null ? null : Date.parse(table.from), to: table.to === null ? null : Date.parse(table.to) });
    for (const l of sub.lines) {
      let m = perHour.get(groupId(l));
      if (!m) perHour.set(groupId(l), (m = new Map()));
      m.set(hour, l);
    }
  }
  const duplicateKeys = new Set(table.lines.map((l) => l.key).filter((k, i, all) => all.indexOf(k) !== i));
  const all: Group[] = table.lines.map((l, i) => ({
    key: l.key,
    label: duplicateKeys.has(l.key) && l.kind ? `${l.key} (${l.kind})` : l.key,
    color: PALETTE[i % PALETTE.length]!,
    perHour: perHour.get(groupId(l)) ?? new Map(),
  }));
  if (all.length <= MAX_CHART_GROUPS) return all;
  // Keep the biggest by vCPU, memory then storage, so the chart shows what matters; fold the rest.
  const size = (g: Group): bigint => [...g.perHour.values()].reduce((s, t) => s + t.cpu_ms * GIB + t.mem_byte_ms + t.storage_byte_ms, 0n);
  const ranked = [...all].sort((a, b) => (size(b) > size(a) ? 1 : size(b) < size(a) ? -1 : 0));
  const kept = new Set(ranked.slice(0, MAX_CHART_GROUPS - 1));
  const others: Group = { key: '', label: `${all.length - kept.size} others`, color: OTHERS_COLOR, perHour: new Map() };
  for (const g of all) {
    if (kept.has(g)) continue;
    for (const [hour, t] of g.perHour) {
      const o = others.perHour.get(hour) ?? { cpu_ms: 0n, mem_byte_ms: 0n, storage_byte_ms: 0n, provisional: false };
      others.perHour.set(hour, { cpu_ms: o.cpu_ms + t.cpu_ms, mem_byte_ms: o.mem_byte_ms + t.mem_byte_ms, storage_byte_ms: o.storage_byte_ms + t.storage_byte_ms, provisional: o.provisional || t.provisional });
    }
  }
  return [...all.filter((g) => kept.has(g)).map((g, i) => ({ ...g, color: PALETTE[i % PALETTE.length]! })), others];
}

const W = 960;
const H = 260;
const LEFT = 70;
const RIGHT = 16;
const TOP = 22;
const BOTTOM = 46;

function chart(metric: Metric, hours: number[], groups: Group[], watermark: number | undefined): string {
  const plotW = W - LEFT - RIGHT;
  const plotH = H - TOP - BOTTOM;
  const iso = hours.map((t) => new Date(t).toISOString());
  const stacks = iso.map((h) => groups.map((g) => { const t = g.perHour.get(h); return t ? metric.average(t) : 0; }));
  const max = Math.max(0, ...stacks.map((s) => s.reduce((a, b) => a + b, 0)));
  const ticks = niceTicks(max);
  const top = ticks[ticks.length - 1]!;
  const y = (v: number): number => TOP + plotH - (plotH * v) / top;
  const bw = hours.length ? plotW / hours.length : 0;
  const parts: string[] = [];
  for (const v of ticks) {
    parts.push(`<line class="grid" x1="${LEFT}" x2="${W - RIGHT}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}"/>`);
    parts.push(`<text class="ytick" x="${LEFT - 6}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end">${esc(tickText(v))}${v === 0 ? '' : ` ${esc(metric.unit)}`}</text>`);
  }
  hours.forEach((t, i) => {
    const final = watermark !== undefined && t + HOUR_MS <= watermark;
    const status = final ? 'final' : 'provisional';
    const x = LEFT + i * bw + bw * 0.08;
    const w = Math.max(bw * 0.84, 0.5);
    let acc = 0;
    const segs = groups
      .map((g, gi) => {
        const v = stacks[i]![gi]!;
        if (v <= 0) return '';
        const y0 = y(acc);
        acc += v;
        const y1 = y(acc);
        const total = g.perHour.get(iso[i]!)!;
        const tip = `${g.label} — ${hourRange(t)}: ${tickText(Number(v.toFixed(3)))} ${metric.unit} on average (${metric.total(total)} ${metric.totalUnit}), ${status}`;
        return `<path class="seg" data-group="${esc(g.label)}" d="M${x.toFixed(2)} ${y0.toFixed(2)}h${w.toFixed(2)}V${y1.toFixed(2)}h${(-w).toFixed(2)}Z" fill="${g.color}"><title>${esc(tip)}</title></path>`;
      })
      .join('');
    // One rect per hour (the bar's full-height hover area, behind its segments): the hour's total.
    const hourTip = `${hourRange(t)}: ${tickText(Number(acc.toFixed(3)))} ${metric.unit} on average in all, ${status}`;
    const hit = `<rect class="hour" x="${x.toFixed(2)}" y="${TOP}" width="${w.toFixed(2)}" height="${plotH}" fill="transparent"><title>${esc(hourTip)}</title></rect>`;
    parts.push(`<g class="bar${final ? '' : ' provisional'}" data-hour="${iso[i]}">${hit}${segs}</g>`);
  });
  // Hour labels at a round step, the date under the first label and under every midnight.
  const step = labelStepHours(hours.length);
  let lastDate = '';
  hours.forEach((t, i) => {
    const d = new Date(t);
    if (Math.round(t / HOUR_MS) % step !== 0 && !(i === 0 && step === 1)) return;
    const x = LEFT + i * bw;
    const date = `${d.getUTCDate()} ${MONTHS[d.getUTCMonth()]}`;
    const showDate = date !== lastDate;
    lastDate = date;
    parts.push(`<line class="xtick" x1="${x.toFixed(1)}" x2="${x.toFixed(1)}" y1="${TOP + plotH}" y2="${TOP + plotH + 4}"/>`);
    parts.push(`<text class="xlabel" x="${x.toFixed(1)}" y="${TOP + plotH + 16}" text-anchor="middle">${clockText(d)}</text>`);
    if (showDate) parts.push(`<text class="xdate" x="${x.toFixed(1)}" y="${TOP + plotH + 30}" text-anchor="middle">${esc(date)}</text>`);
  });
  parts.push(`<line class="axis" x1="${LEFT}" x2="${W - RIGHT}" y1="${TOP + plotH}" y2="${TOP + plotH}"/><line class="axis" x1="${LEFT}" x2="${LEFT}" y1="${TOP}" y2="${TOP + plotH}"/>`);
  parts.push(`<text class="axis-title" x="${LEFT + plotW / 2}" y="${H - 2}" text-anchor="middle">hour (UTC)</text>`);
  if (watermark !== undefined && hours.length && watermark > hours[0]! && watermark < hours[hours.length - 1]! + HOUR_MS) {
    const x = LEFT + ((watermark - hours[0]!) / HOUR_MS) * bw;
    const anchor = x > LEFT + plotW * 0.7 ? 'end' : 'start';
    parts.push(`<line class="watermark" x1="${x.toFixed(1)}" x2="${x.toFixed(1)}" y1="${TOP - 8}" y2="${TOP + plotH}"><title>watermark ${esc(humanTime(watermark))}</title></line>`);
    parts.push(`<text class="watermark-label" x="${(x + (anchor === 'start' ? 4 : -4)).toFixed(1)}" y="${TOP - 10}" text-anchor="${anchor}">watermark ${esc(humanTime(watermark))}: final ◂ ▸ provisional</text>`);
  }
  return `<figure class="chart" data-metric="${metric.id}"><figcaption>${esc(metric.title)}</figcaption>
<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="100%" role="img" aria-label="${esc(metric.title)}">${parts.join('')}</svg></figure>`;
}

const STYLE = `
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2em auto;max-width:1000px;color:#222;padding:0 1em}
h1{font-size:1.5em;margin-bottom:.2em}.note{color:#555;margin:.3em 0}
table{border-collapse:collapse;margin:1em 0}td,th{padding:.3em .8em;border-bottom:1px solid #ddd;text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td:first-child,th:first-child{text-align:left}tfoot td{font-weight:bold;border-top:2px solid #999}
figure{margin:1.5em 0}figcaption{font-weight:600;margin-bottom:.3em}
svg text{font-size:11px;fill:#444}svg .xdate{fill:#777}svg .axis-title{fill:#777}
svg .grid{stroke:#e6e6e6}svg .axis{stroke:#888}svg .xtick{stroke:#888}
svg .watermark{stroke:#c0392b;stroke-width:1.5;stroke-dasharray:5 3}svg .watermark-label{fill:#c0392b;font-weight:600}
svg g.provisional path{fill-opacity:.45}svg rect.hour:hover{fill:rgba(0,0,0,.04)}
.legend{list-style:none;padding:0;margin:.5em 0;display:flex;flex-wrap:wrap;gap:.3em 1.2em}
.legend li{display:flex;align-items:center;gap:.35em}.swatch{display:inline-block;width:.9em;height:.9em;border-radius:2px}
.key{border:1px solid #eee;background:#fafafa;padding:.6em .9em;border-radius:4px}
`;

export interface UsageHtmlInfo {
  /** --source as given: a bucket URL is shown, a local directory only by its name. */
  source: string;
  watermark?: string;
  generatedAt?: string;
  /** The hourly rows the table was computed from: the charts stack them by the table's group. */
  rows?: readonly HourlyRow[];
}

export function renderUsageHtml(table: UsageTable, info: UsageHtmlInfo = { source: '' }): string {
  const { hours, truncated } = chartHours(table);
  const groups = info.rows ? chartGroups(table, info.rows) : [{ key: 'total', label: 'total', color: PALETTE[0]!, perHour: new Map(table.hours.map((h) => [h.hour, h])) }];
  const watermark = info.watermark ? Date.parse(info.watermark) : undefined;
  const byResource = table.by === 'resource';
  const label = new Map(groups.map((g) => [g.key, g]));
  const rows = table.lines
    .map((l) => {
      const g = label.get(l.key);
      const sw = g && g.key ? `<span class="swatch" style="background:${g.color}"></span> ` : '';
      return `<tr data-group="${esc(l.key)}"><td>${sw}${esc(l.key)}</td>${byResource ? `<td>${esc(l.kind ?? '')}</td>` : ''}<td>${vcpuHours(l)}</td><td>${memGibHours(l)}</td><td>${storageGibHours(l)}</td><td>${l.provisional ? 'includes provisional hours' : 'final'}</td></tr>`;
    })
    .join('\n');
  const t = table.total;
  const range = `${table.from ? humanTime(table.from) : 'the first recorded hour'} to ${table.to ? humanTime(table.to) : 'now'}`;
  const source = describeSource(info.source);
  const legend = info.rows
    ? `<ul class="legend" aria-label="groups">${groups.map((g) => `<li data-group="${esc(g.label)}"><span class="swatch" style="background:${g.color}"></span>${esc(g.label)}</li>`).join('')}</ul>`
    : '';
  const finalNote =
    watermark === undefined
      ? ''
      : `<p class="key">The <b style="color:#c0392b">watermark</b> (${esc(humanTime(watermark))}) is how far every node's uploads are known to be complete. Hours that end before it are <b>final</b>: their numbers will not change (a late correction is published as a numbered revision). Later hours are <b>provisional</b>, drawn lighter: they may still grow as uploads arrive.</p>`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>Metering usage by ${esc(table.by)}</title>
<style>${STYLE}</style></head><body>
<h1>Metering usage by ${esc(table.by)}</h1>
<p class="note">Hours from ${esc(range)}${source ? `; source: ${esc(source)}` : ''}${info.generatedAt ? `; generated ${esc(humanTime(info.generatedAt))}` : ''}.</p>
<table><thead><tr><th>${esc(table.by)}</th>${byResource ? '<th>kind</th>' : ''}<th>vCPU-hours</th><th>memory GiB-hours</th><th>storage GiB-hours</th><th>status</th></tr></thead>
<tbody>
${rows}
</tbody><tfoot><tr class="total"><td>TOTAL</td>${byResource ? '<td></td>' : ''}<td data-metric="cpu" data-exact="${t.cpu_ms}">${vcpuHours(t)}</td><td data-metric="memory" data-exact="${t.mem_byte_ms}">${memGibHours(t)}</td><td data-metric="storage" data-exact="${t.storage_byte_ms}">${storageGibHours(t)}</td><td>${t.provisional ? 'includes provisional hours' : 'final'}</td></tr></tfoot></table>
${table.lines.length === 0 ? '<p class="note">No usage in this range.</p>' : ''}
<p class="note">Each bar is one hour. Its height is the <b>average</b> amount in use during that hour (2 vCPUs for the whole hour, or 4 vCPUs for half of it, both show 2 vCPUs = 2 vCPU-hours)${info.rows ? `, stacked by ${esc(table.by)}` : ''}.${truncated ? ` Only the first ${MAX_HOURS / 24} days are drawn; the table covers the whole range.` : ''}</p>
${legend}
${finalNote}
${METRICS.map((m) => chart(m, hours, groups, watermark)).join('\n')}
</body></html>
`;
}
