/**
 * How benchmarks print: one markdown table of what was measured side by side, then one line per
 * target with the ratio, the target and whether it was met. Ratios are the result; absolute numbers
 * on a shared 2-core machine are context.
 */
import * as os from 'node:os';

export type Cell = string | number;

export function table(header: string[], rows: Cell[][], align: ('l' | 'r')[] = []): string {
  const sep = header.map((_, i) => ((align[i] ?? (i === 0 ? 'l' : 'r')) === 'r' ? '---:' : '---'));
  return [header, sep, ...rows].map((r) => `| ${r.join(' | ')} |`).join('\n');
}

export interface Target {
  /** What is compared, e.g. "ship to dir / cat". */
  what: string;
  value: number;
  /** Printed form of the value (default: the ratio with 2 decimals and an "x"). */
  shown?: string;
  /** e.g. ">= 0.5x" */
  target: string;
  met: boolean | undefined;
}

/** Aligned target lines: `what = value  (target ...)  MET|MISSED`. */
export function targetLines(targets: Target[]): string {
  const w = Math.max(...targets.map((t) => t.what.length));
  return targets
    .map((t) => `${t.what.padEnd(w)} = ${(t.shown ?? `${t.value.toFixed(2)}x`).padStart(9)}  (target ${t.target})  ${t.met === undefined ? 'n/a' : t.met ? 'MET' : 'MISSED'}`)
    .join('\n');
}

export const mib = (bytes: number): string => (bytes / 1024 / 1024).toFixed(1);
export const int = (n: number): string => Math.round(n).toLocaleString('en-US');
export const secs = (ms: number): string => (ms / 1000).toFixed(2);

export function machineLine(): string {
  return `node ${process.version}, ${os.cpus().length} cpus (${os.cpus()[0]?.model.trim() ?? '?'}), ${(os.totalmem() / 1024 ** 3).toFixed(0)} GiB, load avg ${os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')}`;
}

/** Value of percentile `p` (0..1) of an ascending-sorted array. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

/** "rss 176 = V8 heap 60 (used 41) + outside the heap 70 (Buffers 65)", from a sampled memoryUsage(). */
export function memoryBreakdown(m: NodeJS.MemoryUsage | undefined): string {
  if (!m) return 'no sample';
  return `at the sampled peak: RSS ${mib(m.rss)} MiB = V8 heap ${mib(m.heapTotal)} MiB (live ${mib(m.heapUsed)}) + Buffers/external ${mib(m.external)} MiB (ArrayBuffers ${mib(m.arrayBuffers)}) + code, stacks, allocator`;
}
