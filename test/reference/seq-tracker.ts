/**
 * Per-writer sequence coverage. Every recorder instance (writer) numbers its entries 1, 2, 3...
 * and spends a number even when a write fails, so a hole in what arrived is a possible loss
 * upstream. Coverage is kept as disjoint ranges, so it costs a few numbers per writer, not one
 * per entry; it also identifies an entry seen before after its id has left the dedup window.
 */
import type { SeqGap } from '../../sink/consumer/findings.js';

export interface WriterCoverage {
  node: string;
  /** Sorted, disjoint, non-adjacent inclusive ranges [lo, hi]. */
  ranges: [number, number][];
}

export class SeqTracker {
  constructor(readonly writers: Record<string, WriterCoverage> = {}) {}

  has(writer: string, seq: number): boolean {
    const ranges = this.writers[writer]?.ranges;
    if (!ranges) return false;
    const i = this.indexAtOrBefore(ranges, seq);
    return i >= 0 && ranges[i]![1] >= seq;
  }

  /** Records `seq`; false if it was already covered. */
  add(writer: string, node: string, seq: number): boolean {
    const w = (this.writers[writer] ??= { node, ranges: [] });
    const r = w.ranges;
    const i = this.indexAtOrBefore(r, seq);
    if (i >= 0 && r[i]![1] >= seq) return false;
    const joinsLeft = i >= 0 && r[i]![1] === seq - 1;
    const joinsRight = i + 1 < r.length && r[i + 1]![0] === seq + 1;
    if (joinsLeft && joinsRight) {
      r[i]![1] = r[i + 1]![1];
      r.splice(i + 1, 1);
    } else if (joinsLeft) {
      r[i]![1] = seq;
    } else if (joinsRight) {
      r[i + 1]![0] = seq;
    } else {
      r.splice(i + 1, 0, [seq, seq]);
    }
    return true;
  }

  /**
   * Holes in every writer's coverage: before its first seen seq (writers start at 1), between
   * ranges, and after the last one up to what the node's shipper says it shipped (`lastSeq`).
   */
  gaps(lastSeq: (writer: string) => number | undefined = () => undefined): SeqGap[] {
    const out: SeqGap[] = [];
    for (const writer of Object.keys(this.writers).sort()) {
      const { node, ranges } = this.writers[writer]!;
      const missing: [number, number][] = [];
      let next = 1;
      for (const [lo, hi] of ranges) {
        if (lo > next) missing.push([next, lo - 1]);
        next = hi + 1;
      }
      const shipped = lastSeq(writer);
      if (shipped !== undefined && shipped >= next) missing.push([next, shipped]);
      if (missing.length > 0) out.push({ writer, node, missing, count: missing.reduce((n, [lo, hi]) => n + hi - lo + 1, 0) });
    }
    return out;
  }

  /** Index of the last range whose lo <= seq, or -1. */
  private indexAtOrBefore(r: [number, number][], seq: number): number {
    let lo = 0;
    let hi = r.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (r[mid]![0] <= seq) {
        found = mid;
        lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
    return found;
  }
}
