/**
 * Object layout in the bucket (or local bucket directory). Warehouse-ready hive partitioning:
 *
 *   <prefix>/ledger/node=<node>/dt=<YYYY-MM-DD>/<segment>.<start>-<end>.ndjson[.gz]      valid lines
 *   <prefix>/quarantine/node=<node>/dt=<YYYY-MM-DD>/<segment>.<start>-<end>.ndjson[.gz]  malformed lines
 *   <prefix>/nodes/<node>.json                                                          node progress
 *
 * `<segment>` is the ledger segment's file name without `.jsonl`; `<start>-<end>` is the byte range
 * of the segment the object covers, zero-padded so names sort by offset. Both are fixed by the
 * ledger bytes, so a retry after a crash produces the same name and a create-only upload turns a
 * repeat into a no-op. `dt` is the segment's creation date (from its name), also fixed.
 *
 * A segment whose bytes were replaced underneath the shipper (truncated by hand, restored from a
 * copy) is shipped again under a new generation, `<segment>.g<gen>.<start>-<end>`, so new content
 * never collides with an object that holds the old bytes of the same range. Generation 0 has no tag.
 */
import { isSegmentName, segmentCreatedAt, SEGMENT_BASE_PATTERN } from '../src/ledger-layout.js';
import { isNodeId } from '../src/node-id.js';

export const LEDGER_DIR = 'ledger';
export const QUARANTINE_DIR = 'quarantine';
export const NODES_DIR = 'nodes';
const OFFSET_DIGITS = 16;
const OBJECT_RE = new RegExp(`^(${SEGMENT_BASE_PATTERN})\\.(?:g(\\d+)\\.)?(\\d{16})-(\\d{16})\\.ndjson(\\.gz)?$`);

export type ObjectClass = 'ledger' | 'quarantine';

/** Throws unless `node` is safe inside an object name (no `/`, `..`, NUL or other surprises). */
export function assertSafeNode(node: string): string {
  if (!isNodeId(node)) throw new Error(`node id ${JSON.stringify(node)} is not safe in an object name: use letters, digits, ".", "_" or "-"`);
  return node;
}

/** Normalizes a bucket prefix: no leading/trailing slashes; refuses `.`/`..` segments and NUL. */
export function normalizePrefix(prefix: string): string {
  const parts = prefix.split('/').filter((p) => p.length > 0);
  for (const p of parts) {
    if (p === '.' || p === '..' || p.includes('\0')) throw new Error(`prefix ${JSON.stringify(prefix)} contains ${JSON.stringify(p)}`);
  }
  return parts.join('/');
}

function join(...parts: string[]): string {
  return parts.filter((p) => p.length > 0).join('/');
}

export function segmentBase(segmentName: string): string {
  if (!isSegmentName(segmentName)) throw new Error(`not a ledger segment name: ${segmentName}`);
  return segmentName.slice(0, -'.jsonl'.length);
}

/** UTC date (YYYY-MM-DD) a segment belongs to: its creation date. */
export function segmentDate(segmentName: string): string {
  const ms = segmentCreatedAt(segmentName);
  if (ms === undefined) throw new Error(`not a ledger segment name: ${segmentName}`);
  return new Date(ms).toISOString().slice(0, 10);
}

const pad = (n: number): string => String(n).padStart(OFFSET_DIGITS, '0');

/** Directory (prefix) holding every object cut from one segment. */
export function segmentObjectDir(prefix: string, cls: ObjectClass, node: string, segmentName: string): string {
  return join(normalizePrefix(prefix), cls === 'ledger' ? LEDGER_DIR : QUARANTINE_DIR, `node=${assertSafeNode(node)}`, `dt=${segmentDate(segmentName)}`);
}

/** The deterministic name of the object holding bytes [start, end) of generation `gen` of a segment. */
export function objectName(prefix: string, cls: ObjectClass, node: string, segmentName: string, start: number, end: number, gzip: boolean, gen = 0): string {
  if (!(Number.isSafeInteger(start) && Number.isSafeInteger(end) && start >= 0 && end > start)) throw new Error(`bad byte range ${start}-${end}`);
  if (!(Number.isSafeInteger(gen) && gen >= 0)) throw new Error(`bad generation ${gen}`);
  const genTag = gen === 0 ? '' : `g${gen}.`;
  return `${segmentObjectDir(prefix, cls, node, segmentName)}/${segmentBase(segmentName)}.${genTag}${pad(start)}-${pad(end)}.ndjson${gzip ? '.gz' : ''}`;
}

export interface ParsedObjectName {
  cls: ObjectClass;
  node: string;
  dt: string;
  segment: string;
  gen: number;
  start: number;
  end: number;
  gzip: boolean;
}

/** Parses a name made by objectName (with the same prefix); undefined for anything else. */
export function parseObjectName(prefix: string, name: string): ParsedObjectName | undefined {
  const p = normalizePrefix(prefix);
  const rest = p ? (name.startsWith(p + '/') ? name.slice(p.length + 1) : undefined) : name;
  if (rest === undefined) return undefined;
  const parts = rest.split('/');
  if (parts.length !== 4) return undefined;
  const [dir, nodePart, dtPart, file] = parts as [string, string, string, string];
  const cls: ObjectClass | undefined = dir === LEDGER_DIR ? 'ledger' : dir === QUARANTINE_DIR ? 'quarantine' : undefined;
  if (!cls || !nodePart.startsWith('node=') || !dtPart.startsWith('dt=')) return undefined;
  const m = OBJECT_RE.exec(file);
  if (!m) return undefined;
  const node = nodePart.slice(5);
  if (!isNodeId(node)) return undefined;
  return { cls, node, dt: dtPart.slice(3), segment: `${m[1]}.jsonl`, gen: m[2] === undefined ? 0 : Number(m[2]), start: Number(m[3]), end: Number(m[4]), gzip: m[5] !== undefined };
}

export function nodeProgressName(prefix: string, node: string): string {
  return join(normalizePrefix(prefix), NODES_DIR, `${assertSafeNode(node)}.json`);
}

/** Per-writer high-water marks, as shipped. */
export interface WriterProgress {
  last_seq: number;
  last_emitted_at: string;
}

/**
 * `<prefix>/nodes/<node>.json`: what a node's shipper has shipped, rewritten every few seconds even
 * when idle. The consumer's completeness watermark is built from `complete_through`.
 */
export interface NodeProgress {
  v: 1;
  node: string;
  /** When the shipper wrote this (its clock). A node whose report is old is silent. */
  reported_at: string;
  /**
   * Every entry this node wrote to its ledger with emitted_at before this time is in the bucket.
   * When the shipper has drained everything it holds the time of that scan; with a backlog it
   * holds the emitted_at of the last entry shipped.
   */
  complete_through: string;
  /** Bytes in the ledger not yet confirmed uploaded. */
  backlog_bytes: number;
  writers: Record<string, WriterProgress>;
}
