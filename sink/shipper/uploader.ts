import { promisify } from 'node:util';
import { gunzip as gunzipCb, gzip as gzipCb } from 'node:zlib';
import type { Destination, PutOptions } from '../destinations/destination.js';
import { isGzip } from '../gzip.js';
import { objectName, type ObjectClass } from '../layout.js';
import { sha256Hex, type Batch } from './batch.js';

const gzip = promisify(gzipCb);
const gunzip = promisify(gunzipCb);

/**
 * The sha256 of what an existing object holds (uncompressed), from its metadata, or, when the
 * metadata is missing (an object stored by another tool, or whose metadata was lost), from its
 * bytes: a missing checksum must not be mistaken for different content.
 */
async function storedSha(ctx: UploadContext, name: string, metadata: Record<string, string>): Promise<string | undefined> {
  const recorded = metadata[META.sha256];
  if (recorded !== undefined) return recorded;
  const bytes = await ctx.destination.get(name);
  if (bytes === undefined) return undefined;
  return sha256Hex(isGzip(bytes) ? await gunzip(bytes) : bytes);
}

/** Metadata keys stored on every shipped object; reconciliation reads them back. */
export const META = {
  segment: 'segment',
  node: 'node',
  gen: 'gen',
  start: 'start',
  end: 'end',
  lines: 'lines',
  sha256: 'sha256',
  /** Which objects the range produced ("ledger", "quarantine" or both, comma-separated). */
  classes: 'classes',
} as const;

export interface UploadContext {
  /** Retrying already (RetryingDestination): every call here succeeds, stops or gives up. */
  destination: Destination;
  prefix: string;
  node: string;
  gzip: boolean;
}

export type UploadOutcome =
  | { kind: 'stored'; objects: number; bytes: number; created: number }
  /** An object of that name holds different bytes: the segment was replaced underneath us. */
  | { kind: 'conflict'; object: string; theirs: string | undefined; ours: string };

/**
 * Stores the objects of one batch create-only. "exists" with our checksum means an earlier attempt
 * (killed before it could save its position) already stored it: that is success, not a duplicate.
 */
export async function uploadBatch(ctx: UploadContext, batch: Batch): Promise<UploadOutcome> {
  const classes = batch.classes;
  let bytes = 0;
  let created = 0;
  for (const cls of classes) {
    const name = objectName(ctx.prefix, cls, ctx.node, batch.segment, batch.start, batch.end, ctx.gzip, batch.gen);
    const body = batch.body(cls);
    const sha = sha256Hex(body);
    const payload = ctx.gzip ? await gzip(body) : body;
    const options: PutOptions = {
      contentType: 'application/x-ndjson',
      ...(ctx.gzip ? { contentEncoding: 'gzip' } : {}),
      metadata: metadataFor(ctx, batch, cls, sha, classes),
    };
    for (;;) {
      const result = await ctx.destination.putIfAbsent(name, payload, options);
      if (result === 'created') {
        created++;
        break;
      }
      const info = await ctx.destination.head(name);
      if (info === undefined) continue; // deleted between the two calls: store it again
      const theirs = await storedSha(ctx, name, info.metadata);
      if (theirs === sha) break;
      return { kind: 'conflict', object: name, theirs, ours: sha };
    }
    bytes += payload.length;
  }
  return { kind: 'stored', objects: classes.length, bytes, created };
}

function metadataFor(ctx: UploadContext, batch: Batch, cls: ObjectClass, sha: string, classes: ObjectClass[]): Record<string, string> {
  return {
    [META.segment]: batch.segment,
    [META.node]: ctx.node,
    [META.gen]: String(batch.gen),
    [META.start]: String(batch.start),
    [META.end]: String(batch.end),
    [META.lines]: String(batch.count(cls)),
    [META.sha256]: sha,
    [META.classes]: classes.join(','),
  };
}
