import type { FileHandle } from 'node:fs/promises';
import type { Destination } from '../destinations/destination.js';
import { parseObjectName, segmentBase, segmentObjectDir, type ObjectClass } from '../layout.js';
import { sha256Hex } from './batch.js';
import { SegmentBatcher } from './segment-batcher.js';
import { META } from './uploader.js';

/** One byte range of a segment that has objects at the destination. */
export interface CoveredRange {
  start: number;
  end: number;
  /** Every object the range produced is there (a kill can land between a range's two objects). */
  complete: boolean;
  /** sha256 per class present, from the object metadata. */
  sha256: Partial<Record<ObjectClass, string>>;
}

/** Ranges of one segment per generation, sorted by start. */
export type SegmentCoverage = Map<number, CoveredRange[]>;

/**
 * Lists what the destination already holds for a segment (ledger and quarantine objects of this
 * node). The names carry the ranges, so this is what lets a restarted shipper skip what a killed
 * one stored after its last saved position instead of uploading it again under a different cut.
 */
export async function listSegmentCoverage(destination: Destination, prefix: string, node: string, segment: string): Promise<SegmentCoverage> {
  const byRange = new Map<string, { gen: number; start: number; end: number; present: Set<ObjectClass>; expected: Set<ObjectClass> | undefined; sha: Partial<Record<ObjectClass, string>> }>();
  for (const cls of ['ledger', 'quarantine'] as const) {
    const listPrefix = `${segmentObjectDir(prefix, cls, node, segment)}/${segmentBase(segment)}.`;
    for await (const info of destination.list(listPrefix)) {
      const parsed = parseObjectName(prefix, info.name);
      if (!parsed || parsed.segment !== segment || parsed.node !== node || parsed.cls !== cls) continue;
      const key = `${parsed.gen}:${parsed.start}:${parsed.end}`;
      let r = byRange.get(key);
      if (!r) {
        r = { gen: parsed.gen, start: parsed.start, end: parsed.end, present: new Set(), expected: undefined, sha: {} };
        byRange.set(key, r);
      }
      r.present.add(cls);
      const sha = info.metadata[META.sha256];
      if (sha !== undefined) r.sha[cls] = sha;
      const classes = info.metadata[META.classes];
      if (classes !== undefined) r.expected = new Set(classes.split(',').filter((c): c is ObjectClass => c === 'ledger' || c === 'quarantine'));
    }
  }
  const out: SegmentCoverage = new Map();
  for (const r of byRange.values()) {
    // Without our metadata we cannot know a companion is missing; trust what is there.
    const complete = r.expected === undefined || [...r.expected].every((c) => r.present.has(c));
    const list = out.get(r.gen) ?? [];
    list.push({ start: r.start, end: r.end, complete, sha256: r.sha });
    out.set(r.gen, list);
  }
  for (const list of out.values()) list.sort((a, b) => a.start - b.start || a.end - b.end);
  return out;
}

/** The highest generation with objects, or undefined. */
export function highestGen(coverage: SegmentCoverage): number | undefined {
  let max: number | undefined;
  for (const g of coverage.keys()) if (max === undefined || g > max) max = g;
  return max;
}

/** A stored range and the generation it belongs to. */
export interface TiledRange extends CoveredRange {
  gen: number;
}

/**
 * The ranges that speak for a segment's bytes now: a newer generation's ranges replace the older
 * ones from where the newer generation starts (a segment cut short and regrown is shipped again
 * only from its first changed range), so the result runs from 0 across generations.
 */
export function effectiveTiling(coverage: SegmentCoverage): TiledRange[] {
  const out: TiledRange[] = [];
  let cutoff = Infinity;
  for (const gen of [...coverage.keys()].sort((a, b) => b - a)) {
    const ranges = coverage.get(gen)!.filter((r) => r.end <= cutoff);
    if (ranges.length === 0) continue;
    for (const r of ranges) out.push({ ...r, gen });
    cutoff = Math.min(cutoff, ranges[0]!.start);
  }
  return out.sort((a, b) => a.start - b.start);
}

/** Where to go on with a segment whose position is unknown or no longer fits. */
export interface Reconciled {
  gen: number;
  position: number;
  /** Stored ranges of `gen` at or after `position` (shipFrom skips or re-cuts them). */
  ranges: CoveredRange[];
  /** Set when the file's bytes differ from what the destination holds: what differs. */
  difference?: string;
}

/**
 * Compares a segment file with what the destination holds for it, range by range from its start,
 * re-cutting each stored range from the file and comparing checksums. Everything that still matches
 * stays shipped; from the first range that does not (or the first byte the file no longer has), the
 * segment is shipped again under a new generation. A range of which only one object landed (a kill
 * between the two) is left for shipFrom to re-cut under its own name. `atLeastGen` forces a new
 * generation (an upload found different bytes under a name we were about to use).
 */
export async function reconcileSegment(
  destination: Destination,
  prefix: string,
  node: string,
  name: string,
  fh: FileHandle,
  size: number,
  cut: { batchBytes: number; maxLineBytes: number },
  atLeastGen?: number,
): Promise<Reconciled> {
  const coverage = await listSegmentCoverage(destination, prefix, node, name);
  const top = highestGen(coverage);
  if (top === undefined) return { gen: atLeastGen ?? 0, position: 0, ranges: [] };
  const batcher = new SegmentBatcher(fh, name, top, 0, cut.batchBytes, cut.maxLineBytes);
  let at = 0;
  let difference: string | undefined;
  for (const r of effectiveTiling(coverage)) {
    if (r.start !== at) break; // nothing stored for [at, r.start) yet: ship it from here
    if (r.end > size) {
      difference = `the file is ${size} bytes, shorter than the stored range ${r.start}-${r.end}`;
      break;
    }
    const batch = await batcher.next({ limit: r.end, sizeCut: false, includeTail: true });
    const same = batch !== undefined && batch.end === r.end && (['ledger', 'quarantine'] as const).every((cls) => r.sha256[cls] === undefined || r.sha256[cls] === sha256Hex(batch.body(cls)));
    if (!same) {
      difference = `bytes ${r.start}-${r.end} differ from the stored objects of generation ${r.gen}`;
      break;
    }
    if (!r.complete) {
      if (r.gen !== top) difference = `range ${r.start}-${r.end} of old generation ${r.gen} is incomplete`;
      break;
    }
    at = r.end;
  }
  if (difference !== undefined || (atLeastGen !== undefined && atLeastGen > top)) {
    return { gen: Math.max(top + 1, atLeastGen ?? 0), position: at, ranges: [], ...(difference ? { difference } : {}) };
  }
  return { gen: top, position: at, ranges: (coverage.get(top) ?? []).filter((r) => r.end > at) };
}
