/**
 * The on-disk layout of a ledger directory, shared by every writer process and the shipper:
 *
 *   <dir>/ledger.jsonl                              symlink to the active segment (what writers open)
 *   <dir>/ledger-20261124T080530123Z-k3j9x2qa.jsonl  segments; a name never changes once created
 *   <dir>/.ledger.lock                              proper-lockfile lock, held only to create or rotate
 *
 * All processes append to the one active segment (O_APPEND, one write per entry), so a hundred
 * short-lived CLI invocations make one file, not a hundred. Rotation creates a new segment and
 * atomically repoints the symlink; a segment's name never changes, so the shipper's object names,
 * derived from it, are the same before and after a rotation.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import lockfile from 'proper-lockfile';
import { randomId } from './ulid.js';

export const ACTIVE_LINK = 'ledger.jsonl';
export const LOCK_NAME = '.ledger.lock';
const SEGMENT_RE = /^ledger-(\d{8})T(\d{9})Z-([a-z0-9]{8})\.jsonl$/;
export const FILE_MODE = 0o600;
export const DIR_MODE = 0o700;

/** A new segment name for a segment created at `at`. */
export function newSegmentName(at: Date = new Date()): string {
  const iso = at.toISOString(); // 2026-11-24T08:05:30.123Z
  const stamp = iso.slice(0, 10).replaceAll('-', '') + 'T' + iso.slice(11, 23).replaceAll(':', '').replace('.', '') + 'Z';
  return `ledger-${stamp}-${randomId(8)}.jsonl`;
}

export function isSegmentName(name: string): boolean {
  return SEGMENT_RE.test(name);
}

/** When a segment was created, from its name (epoch ms); undefined if not a segment name. */
export function segmentCreatedAt(name: string): number | undefined {
  const m = SEGMENT_RE.exec(name);
  if (!m) return undefined;
  const d = m[1]!;
  const t = m[2]!;
  return Date.UTC(+d.slice(0, 4), +d.slice(4, 6) - 1, +d.slice(6, 8), +t.slice(0, 2), +t.slice(2, 4), +t.slice(4, 6), +t.slice(6, 9));
}

/** Segment files in a ledger directory, oldest first (names sort by creation time). */
export function listSegments(dir: string): string[] {
  return fs
    .readdirSync(dir)
    .filter(isSegmentName)
    .sort();
}

/** The name of the active segment, or undefined when there is none yet. */
export function activeSegmentName(dir: string): string | undefined {
  try {
    const target = fs.readlinkSync(path.join(dir, ACTIVE_LINK));
    return path.basename(target);
  } catch {
    return undefined;
  }
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));
function sleepSync(ms: number): void {
  Atomics.wait(sleeper, 0, 0, ms);
}

/**
 * Runs `fn` holding the directory's lock. Only segment creation and rotation take it, never an
 * ordinary append. `waitMs` 0 means "try once": returns undefined if another process holds it.
 */
export function withLedgerLockSync<T>(dir: string, waitMs: number, fn: () => T): T | undefined {
  const deadline = Date.now() + waitMs;
  for (;;) {
    let release: (() => void) | undefined;
    try {
      release = lockfile.lockSync(dir, {
        lockfilePath: path.join(dir, LOCK_NAME),
        realpath: false,
        // A process killed while holding the lock frees it after this long.
        stale: 5_000,
        // The default throws from a timer, which would crash the host program.
        onCompromised: () => {},
      });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ELOCKED') throw err;
      if (Date.now() >= deadline) return undefined;
      sleepSync(5);
      continue;
    }
    try {
      return fn();
    } finally {
      try {
        release();
      } catch {
        // Already released or compromised: nothing left to undo.
      }
    }
  }
}

function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch {
    // Some filesystems refuse fsync on a directory; the rename is still atomic.
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** Creates a fresh segment and points the active link at it. Call with the lock held. */
export function startNewSegment(dir: string, now: Date = new Date()): string {
  const name = newSegmentName(now);
  fs.closeSync(fs.openSync(path.join(dir, name), fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_WRONLY, FILE_MODE));
  const tmp = path.join(dir, `.${ACTIVE_LINK}.${randomId(8)}.tmp`);
  fs.symlinkSync(name, tmp);
  fs.renameSync(tmp, path.join(dir, ACTIVE_LINK));
  fsyncDir(dir);
  return name;
}

/**
 * A `ledger.jsonl` that is a regular file (an older writer, or a copy) becomes a named segment, so
 * nothing in it is lost and the shipper sees it like any other. Call with the lock held.
 */
function adoptPlainLedgerFile(dir: string): void {
  const link = path.join(dir, ACTIVE_LINK);
  const st = fs.lstatSync(link, { throwIfNoEntry: false });
  // Named before "now", so it sorts before the segment created right after it (names sort by time).
  if (st?.isFile()) fs.renameSync(link, path.join(dir, newSegmentName(new Date(Math.min(st.mtimeMs, Date.now() - 1)))));
}

export interface OpenSegment {
  fd: number;
  name: string;
  dev: number;
  ino: number;
  size: number;
}

/** Opens the active segment for appending, creating the directory and the first segment if needed. */
export function openActiveSegment(dir: string): OpenSegment {
  fs.mkdirSync(dir, { recursive: true, mode: DIR_MODE });
  const link = path.join(dir, ACTIVE_LINK);
  for (let attempt = 0; attempt < 20; attempt++) {
    const lst = fs.lstatSync(link, { throwIfNoEntry: false });
    if (!lst || !lst.isSymbolicLink()) {
      withLedgerLockSync(dir, 8_000, () => {
        const again = fs.lstatSync(link, { throwIfNoEntry: false });
        if (again?.isSymbolicLink()) return;
        adoptPlainLedgerFile(dir);
        startNewSegment(dir);
      });
      continue;
    }
    let fd: number;
    try {
      // No O_CREAT: a dangling link must not silently create a file under some other name.
      // O_RDWR so the writer can check whether the last line was torn (see endsWithNewline).
      fd = fs.openSync(link, fs.constants.O_RDWR | fs.constants.O_APPEND);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      // Dangling link (its segment was removed by hand): start a new segment.
      withLedgerLockSync(dir, 8_000, () => {
        if (!fs.existsSync(link)) startNewSegment(dir);
      });
      continue;
    }
    const st = fs.fstatSync(fd);
    const name = activeSegmentName(dir);
    const now = fs.statSync(link, { throwIfNoEntry: false });
    if (name && now && now.ino === st.ino && now.dev === st.dev) {
      return { fd, name, dev: st.dev, ino: st.ino, size: st.size };
    }
    // Rotated between open and check: try again on the new segment.
    fs.closeSync(fd);
  }
  throw new Error(`could not open the active ledger segment in ${dir}: it keeps changing`);
}

/** Whether a file's last byte is a newline (true for an empty file). */
export function endsWithNewline(fd: number, size: number): boolean {
  if (size === 0) return true;
  const buf = Buffer.alloc(1);
  fs.readSync(fd, buf, 0, 1, size - 1);
  return buf[0] === 0x0a;
}
