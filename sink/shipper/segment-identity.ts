/**
 * Whether a saved position still speaks for the file in front of us. A position is only good for
 * the very bytes it was taken on: the same file (device and inode), at least as long, with the same
 * first bytes (a rewrite in place) and the same bytes just before the position (a file cut short
 * and written again past the old position: same inode, same head, bigger, but different bytes where
 * it matters). One definition, used for shipping, backlog, status and retention.
 */
import type { Stats } from 'node:fs';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { SAFE_OPEN_FLAGS } from '../../src/ledger-layout.js';
import { sha256Hex } from './batch.js';

/** Bytes hashed at the head and just before the position. */
export const FINGERPRINT_BYTES = 4096;

/** What a position remembers about the file it was taken on. */
export interface SegmentFingerprint {
  dev: number;
  ino: number;
  /** sha256 (hex) of the first `headLen` bytes: catches a file rewritten in place. */
  headLen: number;
  headHash: string;
  /**
   * sha256 (hex) of the `tailLen` bytes before the position: catches a file cut short (power loss
   * of unsynced bytes, a restore) and regrown past it. Absent in stores written before it existed.
   */
  tailLen?: number;
  tailHash?: string;
}

interface Positioned {
  dev: number;
  ino: number;
  position: number;
}

/** The position can be used on this file: same device and inode, and not beyond its end. */
export function positionFits(pos: Positioned | undefined, st: Stats | undefined): pos is Positioned {
  return pos !== undefined && st !== undefined && pos.dev === st.dev && pos.ino === st.ino && pos.position <= st.size;
}

/** Bytes of the file the position vouches for as shipped (0 when it does not fit the file). */
export function shippedOf(pos: Positioned | undefined, st: Stats): number {
  return positionFits(pos, st) ? pos.position : 0;
}

async function readAt(fh: FileHandle, start: number, len: number): Promise<Buffer> {
  const buf = Buffer.alloc(len);
  let got = 0;
  while (got < len) {
    const { bytesRead } = await fh.read(buf, got, len - got, start + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return buf.subarray(0, got);
}

/**
 * The fingerprint of the file's bytes before `position`. A full head already hashed for the same
 * file (`previous`) is reused: it cannot have changed without identityProblem noticing.
 */
export async function fingerprintAt(fh: FileHandle, st: Stats, position: number, previous?: SegmentFingerprint): Promise<SegmentFingerprint> {
  const len = Math.min(FINGERPRINT_BYTES, position);
  const tail = await readAt(fh, position - len, len);
  const fullHead = previous && previous.dev === st.dev && previous.ino === st.ino && previous.headLen === FINGERPRINT_BYTES;
  const head = fullHead ? undefined : position <= FINGERPRINT_BYTES ? tail : await readAt(fh, 0, len);
  return {
    dev: st.dev,
    ino: st.ino,
    headLen: head ? head.length : previous!.headLen,
    headHash: head ? sha256Hex(head) : previous!.headHash,
    tailLen: tail.length,
    tailHash: sha256Hex(tail),
  };
}

/** Why the saved position no longer speaks for this file, or undefined when it still does. */
export async function identityProblem(pos: Positioned & SegmentFingerprint, fh: FileHandle, st: Stats): Promise<string | undefined> {
  if (st.dev !== pos.dev || st.ino !== pos.ino) return 'file identity (device/inode) changed';
  if (st.size < pos.position) return `file is ${st.size} bytes, shorter than the shipped position ${pos.position}`;
  if (pos.headLen > 0) {
    const head = await readAt(fh, 0, pos.headLen);
    if (head.length < pos.headLen || sha256Hex(head) !== pos.headHash) return 'the first bytes changed (rewritten in place)';
  }
  if (pos.tailLen !== undefined && pos.tailHash !== undefined && pos.tailLen > 0) {
    const tail = await readAt(fh, pos.position - pos.tailLen, pos.tailLen);
    if (tail.length < pos.tailLen || sha256Hex(tail) !== pos.tailHash) return `the bytes before the shipped position ${pos.position} changed (cut short and written again?)`;
  }
  return undefined;
}

/**
 * Bytes of `file` the position really vouches for, for backlog figures: like shippedOf, and for a
 * file that changed since (cut short and regrown, rewritten) 0, since where it differs is only
 * known once the shipper compares it with the destination. A sealed, unchanged file is not read.
 */
export async function verifiedShipped(pos: (Positioned & SegmentFingerprint & { sealed?: boolean }) | undefined, file: string, st: Stats): Promise<number> {
  if (!positionFits(pos, st)) return 0;
  if (pos.position === 0 || (pos.sealed && st.size === pos.position)) return pos.position;
  let fh: FileHandle | undefined;
  try {
    fh = await fsp.open(file, fs.constants.O_RDONLY | SAFE_OPEN_FLAGS);
    return (await identityProblem(pos, fh, await fh.stat())) === undefined ? pos.position : 0;
  } catch {
    return shippedOf(pos, st);
  } finally {
    await fh?.close();
  }
}
