/**
 * A backlog too big for one run (a first run over months of a fleet, a consumer back from a long
 * outage) is read in chunks: each chunk is a run of its own, committed, so a run's memory and the
 * disk it spills are bounded by the chunk, not by the backlog. Every chunk but the last holds the
 * watermark (rules `hold_watermark`), so chunking changes when hours turn final, never what is billed.
 */
import type { ListedObject } from './source-reader.js';

/**
 * About how many bytes of new ledger objects one run reads (0: the whole backlog in one run). A
 * day of the bench's 10-node fleet: its daily runs stay flat up to 21 M entries of history under
 * 1 GiB of memory_limit. Runs of 1 GiB of objects ran out of it at ~25 M entries of history, runs
 * of 256 MiB at ~60 M (docs/benchmarks.md, C): not yet a bound for any backlog.
 */
export const DEFAULT_CHUNK_BYTES = 256 * 1024 ** 2;

/**
 * Objects in time order, as far as their names tell: by upload day, then per node its segments
 * in order. Chunks in this order mostly extend each resource's timeline at its end, which the fold
 * continues; an event that lands before what an earlier chunk folded refolds that resource.
 */
function timeOrder(a: ListedObject, b: ListedObject): number {
  const x = a.parsed;
  const y = b.parsed;
  if (x.dt !== y.dt) return x.dt < y.dt ? -1 : 1;
  if (x.node !== y.node) return x.node < y.node ? -1 : 1;
  if (x.segment !== y.segment) return x.segment < y.segment ? -1 : 1;
  return x.gen - y.gen || x.start - y.start || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
}

/**
 * The new ledger objects cut into runs of at most `maxBytes` each (one object bigger than that is a
 * run alone), cut in time order. Inside a chunk the objects keep the listing's order, so a backlog
 * that fits one run is read exactly as before. Always at least one chunk, empty when there is
 * nothing new: a run still happens.
 */
export function planChunks(objects: readonly ListedObject[], maxBytes: number): ListedObject[][] {
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) throw new Error(`chunk size must be a non-negative number of bytes, got ${maxBytes}`);
  const total = objects.reduce((n, o) => n + o.size, 0);
  if (maxBytes === 0 || total <= maxBytes) return [[...objects]];
  const listed = new Map(objects.map((o, i) => [o, i]));
  const chunks: ListedObject[][] = [];
  let current: ListedObject[] = [];
  let bytes = 0;
  for (const o of [...objects].sort(timeOrder)) {
    if (current.length > 0 && bytes + o.size > maxBytes) {
      chunks.push(current);
      current = [];
      bytes = 0;
    }
    current.push(o);
    bytes += o.size;
  }
  chunks.push(current);
  return chunks.map((c) => c.sort((a, b) => listed.get(a)! - listed.get(b)!));
}
