/**
 * A self-contained HTML usage report: the table and an hourly chart per metric as inline SVG.
 * No scripts, fonts or styles from elsewhere, so it can be mailed or archived as one file.
 */
import { HOUR_MS } from './types.js';
import { memGibHours, storageGibHours, vcpuHours, type UsageHour, type UsageTable, type UsageTotals } from './usage.js';

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

interface Metric {
  title: string;
  unit: string;
  value: (t: UsageTotals) => string;
  color: string;
}

const METRICS: Metric[] = [
  { title: 'vCPU-hours per hour', unit: 'vCPU-h', value: (t) => vcpuHours(t), color: '#3b6fd4' },
  { title: 'Memory GiB-hours per hour', unit: 'GiB-h', value: (t) => memGibHours(t), color: '#2f9e6b' },
  { title: 'Storage GiB-hours per hour', unit: 'GiB-h', value: (t) => storageGibHours(t), color: '#c27a1a' },
];

/** Every hour between the first and last with usage, empty ones included, so the time axis is honest. */
function continuousHours(hours: UsageHour[]): UsageHour[] {
  if (hours.length === 0) return [];
  const byHour = new Map(hours.map((h) => [h.hour, h]));
  const out: UsageHour[] = [];
  const last = Date.parse(hours[hours.length - 1]!.hour);
  for (let t = Date.parse(hours[0]!.hour); t <= last && out.length < 24 * 400; t += HOUR_MS) {
    const iso = new Date(t).toISOString();
    out.push(byHour.get(iso) ?? { hour: iso, cpu_ms: 0n, mem_byte_ms: 0n, storage_byte_ms: 0n, provisional: false });
  }
  return out;
}

function chart(metric: Metric, hours: UsageHour[]): string {
  const W = 900;
  const H = 180;
  const left = 60;
  const bottom = 30;
  const values = hours.map((h) => Number(metric.value(h)));
  const max = Math.max(0, ...values) || 1;
  const bw = hours.length ? (W - left - 10) / hours.length : 0;
  const bars = hours
    .map((h, i) => {
      const v = values[i]!;
      const bh = ((H - bottom - 10) * v) / max;
      const x = left + i * bw;
      const y = H - bottom - bh;
      return `<rect x="${x.toFixed(2)}" y="${y.toFixed(2)}" width="${Math.max(bw - 1, 0.5).toFixed(2)}" height="${bh.toFixed(2)}" fill="${metric.color}" fill-opacity="${h.provisional ? 0.4 : 1}"><title>${esc(h.hour)}: ${esc(metric.value(h))} ${metric.unit}${h.provisional ? ' (provisional)' : ''}</title></rect>`;
    })
    .join('');
  const first = hours[0]?.hour ?? '';
  const lastH = hours[hours.length - 1]?.hour ?? '';
  return `<figure><figcaption>${esc(metric.title)}</figcaption><svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="100%" role="img" aria-label="${esc(metric.title)}">
<line x1="${left}" y1="${H - bottom}" x2="${W - 10}" y2="${H - bottom}" stroke="#888"/><line x1="${left}" y1="10" x2="${left}" y2="${H - bottom}" stroke="#888"/>
<text x="${left - 6}" y="16" font-size="11" text-anchor="end">${esc(String(max))}</text><text x="${left - 6}" y="${H - bottom}" font-size="11" text-anchor="end">0</text>
<text x="${left}" y="${H - 10}" font-size="11">${esc(first.slice(0, 13))}:00Z</text><text x="${W - 10}" y="${H - 10}" font-size="11" text-anchor="end">${esc(lastH.slice(0, 13))}:00Z</text>
${bars}</svg></figure>`;
}

export function renderUsageHtml(table: UsageTable, info: { source: string; watermark?: string; generatedAt?: string } = { source: '' }): string {
  const hours = continuousHours(table.hours);
  const byResource = table.by === 'resource';
  const rows = table.lines
    .map((l) => `<tr><td>${esc(l.key)}</td>${byResource ? `<td>${esc(l.kind ?? '')}</td>` : ''}<td>${vcpuHours(l)}</td><td>${memGibHours(l)}</td><td>${storageGibHours(l)}</td><td>${l.provisional ? 'provisional' : 'final'}</td></tr>`)
    .join('\n');
  const t = table.total;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Metering usage by ${esc(table.by)}</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse}td,th{padding:.25em .8em;border-bottom:1px solid #ddd;text-align:right}
td:first-child,th:first-child{text-align:left}tfoot td{font-weight:bold}figure{margin:1.5em 0}figcaption{font-weight:600;margin-bottom:.3em}.note{color:#666}
</style></head><body>
<h1>Metering usage by ${esc(table.by)}</h1>
<p class="note">Source ${esc(info.source)}; hours from ${esc(table.from ?? 'the beginning')} to ${esc(table.to ?? 'now')}${info.watermark ? `; watermark ${esc(info.watermark)} (later hours are provisional and drawn lighter)` : ''}${info.generatedAt ? `; generated ${esc(info.generatedAt)}` : ''}.</p>
<table><thead><tr><th>${esc(table.by)}</th>${byResource ? '<th>kind</th>' : ''}<th>vCPU-hours</th><th>memory GiB-hours</th><th>storage GiB-hours</th><th>status</th></tr></thead>
<tbody>
${rows}
</tbody><tfoot><tr><td>TOTAL</td>${byResource ? '<td></td>' : ''}<td>${vcpuHours(t)}</td><td>${memGibHours(t)}</td><td>${storageGibHours(t)}</td><td>${t.provisional ? 'includes provisional' : 'final'}</td></tr></tfoot></table>
${METRICS.map((m) => chart(m, hours)).join('\n')}
</body></html>
`;
}
