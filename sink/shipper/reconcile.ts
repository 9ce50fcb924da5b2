import type { Destination } from '../destinations/destination.js';
import { parseObjectName, segmentBase, segmentObjectDir, type ObjectClass } from '../layout.js';
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
