/**
 * Reading what the shippers uploaded, through the Destination interface (local directory or GCS):
 * ledger objects (ndjson, maybe gzip), quarantine objects (counted, never billed) and node progress.
 * Nothing here throws for bad content: a broken object or line comes back as a finding.
 */
import { gunzipSync } from 'node:zlib';
import { parseLedgerBuffer, type LedgerRecord } from '../../src/index.js';
import { NODE_ID_PATTERN } from '../../src/node-id.js';
import { isGzip } from '../gzip.js';
import * as fs from 'node:fs';
import type { Destination } from '../destinations/destination.js';
import { LocalDirDestination } from '../destinations/local-dir.js';
import { NODES_DIR, normalizePrefix, parseObjectName, type NodeProgress, type ParsedObjectName } from '../layout.js';

export interface ListedObject {
  name: string;
  size: number;
  parsed: ParsedObjectName;
}

export interface SourceListing {
  ledger: ListedObject[];
  quarantine: ListedObject[];
  /** Node progress objects: node id -> object name and the destination's time of its last write. */
  nodes: Map<string, { name: string; updated: number | undefined }>;
  /** Objects under the prefix that fit no known name (reported, not read). */
  unknown: string[];
}

const NODE_FILE_RE = new RegExp(`^(${NODE_ID_PATTERN})\\.json$`);

export async function listSource(destination: Destination, prefix: string): Promise<SourceListing> {
  const p = normalizePrefix(prefix);
  const listing: SourceListing = { ledger: [], quarantine: [], nodes: new Map(), unknown: [] };
  const nodesDir = p ? `${p}/${NODES_DIR}/` : `${NODES_DIR}/`;
  for await (const info of destination.list(p ? `${p}/` : '')) {
    const parsed = parseObjectName(p, info.name);
    if (parsed) {
      (parsed.cls === 'ledger' ? listing.ledger : listing.quarantine).push({ name: info.name, size: info.size, parsed });
      continue;
    }
    if (info.name.startsWith(nodesDir)) {
      const m = NODE_FILE_RE.exec(info.name.slice(nodesDir.length));
      if (m) {
        listing.nodes.set(m[1]!, { name: info.name, updated: info.updated });
        continue;
      }
    }
    listing.unknown.push(info.name);
  }
  return listing;
}

/** Gzip is detected by its magic bytes, not trusted from the name: a transcoding download is already plain. */
function decode(body: Buffer): Buffer {
  return isGzip(body) ? gunzipSync(body) : body;
}

export type ObjectRead = { ok: true; records: LedgerRecord[] } | { ok: false; error: string };
export type ObjectFetch = { ok: true; plain: Buffer } | { ok: false; error: string };

/**
 * The bytes of one ledger object, decoded; `ok: false` names why the object as a whole could not be
 * read. Apart from parsing so that a reader can fetch objects ahead and parse each one only when it
 * gets to it: parsed lines take ~2x the bytes of the object in the JS heap (15 MiB for
 * an 8 MiB object of the bench fleet).
 */
export async function fetchLedgerObject(destination: Destination, name: string): Promise<ObjectFetch> {
  let body: Buffer | undefined;
  try {
    body = await destination.get(name);
  } catch (err) {
    return { ok: false, error: `cannot fetch: ${(err as Error).message}` };
  }
  if (body === undefined) return { ok: false, error: 'object disappeared between list and get' };
  try {
    return { ok: true, plain: decode(body) };
  } catch (err) {
    return { ok: false, error: `not valid gzip: ${(err as Error).message}` };
  }
}

/** The records of fetched bytes. An uploaded object is complete: bytes after the last newline are a torn line, reported as such. */
export function parseLedgerObject(fetched: ObjectFetch): ObjectRead {
  return fetched.ok ? { ok: true, records: parseLedgerBuffer(fetched.plain, { includeTail: true }) } : fetched;
}

/** The records of one ledger object; `ok: false` names why the object as a whole could not be read. */
export async function readLedgerObject(destination: Destination, name: string): Promise<ObjectRead> {
  return parseLedgerObject(await fetchLedgerObject(destination, name));
}

/** Lines in a quarantine object (each one a malformed ledger line the shipper set aside). */
export async function countQuarantineLines(destination: Destination, name: string): Promise<number | { error: string }> {
  try {
    const body = await destination.get(name);
    if (body === undefined) return { error: 'object disappeared between list and get' };
    const plain = decode(body);
    let lines = 0;
    for (let i = plain.indexOf(0x0a); i !== -1; i = plain.indexOf(0x0a, i + 1)) lines++;
    if (plain.length > 0 && plain[plain.length - 1] !== 0x0a) lines++;
    return lines;
  } catch (err) {
    return { error: (err as Error).message };
  }
}

const ISO_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

/** Checks the fields the watermark relies on; returns why a progress object is unusable, or null. */
export function checkNodeProgress(value: unknown, node: string): string | null {
  if (typeof value !== 'object' || value === null) return 'not a JSON object';
  const p = value as Partial<NodeProgress>;
  if (p.v !== 1) return `unsupported version ${JSON.stringify(p.v)}`;
  if (p.node !== node) return `names node ${JSON.stringify(p.node)}, expected ${JSON.stringify(node)}`;
  for (const key of ['reported_at', 'complete_through'] as const) {
    const v = p[key];
    if (typeof v !== 'string' || !ISO_RE.test(v) || !Number.isFinite(Date.parse(v))) return `${key} must be a UTC ISO time, got ${JSON.stringify(v)}`;
  }
  if (p.writers !== undefined && (typeof p.writers !== 'object' || p.writers === null)) return 'writers must be an object';
  return null;
}

export type ProgressRead = { ok: true; progress: NodeProgress } | { ok: false; error: string };

export async function readNodeProgress(destination: Destination, name: string, node: string): Promise<ProgressRead> {
  try {
    const body = await destination.get(name);
    if (body === undefined) return { ok: false, error: 'object disappeared between list and get' };
    const value: unknown = JSON.parse(decode(body).toString('utf8'));
    const problem = checkNodeProgress(value, node);
    return problem ? { ok: false, error: problem } : { ok: true, progress: value as NodeProgress };
  } catch (err) {
    return { ok: false, error: (err as Error).message };
  }
}

/**
 * A mistyped bucket directory would read as "nothing was shipped" and, with no node holding the
 * watermark back, publish hours final with zero usage. A bucket that exists but is empty is fine.
 */
export function assertSourceExists(destination: Destination, source: string): void {
  if (destination instanceof LocalDirDestination && !fs.existsSync(destination.root)) {
    throw new Error(`source ${source}: directory ${destination.root} does not exist (nothing to read; check the path)`);
  }
}

/** One listed progress object as this run read it. */
export interface ProgressObjectRead {
  node: string;
  name: string;
  /** The destination's time of its last write (the trusted clock), if it gives one. */
  updated: number | undefined;
  /** The valid progress object, if it could be read. */
  progress: NodeProgress | undefined;
  /** Why the fetch or parse failed (also a bad object in the report). */
  readError: string | undefined;
  /** Usable for the watermark: valid and with a trusted time; else `error` says why not. */
  usable: boolean;
  error: string | null;
}

/** Reads every listed progress object, in listing order. */
export async function readProgressObjects(destination: Destination, nodes: SourceListing['nodes']): Promise<ProgressObjectRead[]> {
  const out: ProgressObjectRead[] = [];
  for (const [node, listed] of nodes) {
    const p = await readNodeProgress(destination, listed.name, node);
    const usable = p.ok && listed.updated !== undefined;
    out.push({
      node,
      name: listed.name,
      updated: listed.updated,
      progress: p.ok ? p.progress : undefined,
      readError: p.ok ? undefined : p.error,
      usable,
      error: usable ? null : p.ok ? 'the destination gives no time of its last write' : p.error,
    });
  }
  return out;
}
