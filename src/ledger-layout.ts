/**
 * The on-disk layout of a ledger directory, shared by every writer process and the shipper:
 *
 *   <dir>/ledger.jsonl                              symlink to the active segment (what writers open)
 *   <dir>/ledger-20261124T080530123Z-k3j9x2qa.jsonl  segments; a name never changes once created
 *   <dir>/.ledger.lock                              proper-lockfile lock, held only to create or rotate
 *   <dir>/.ledger.jsonl.segment                     the name reserved for a plain-file ledger.jsonl
 *
 * All processes append to the one active segment (O_APPEND, one write per entry), so a hundred
 * short-lived CLI invocations make one file, not a hundred. Rotation creates a new segment and
 * atomically repoints the symlink; a segment's name never changes, so the shipper's object names,
 * derived from it, are the same before and after a rotation.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import lockfile from 'proper-lockfile';
import { fsyncDirSync } from './fs-durable.js';
import { randomId } from './ulid.js';

export const ACTIVE_LINK = 'ledger.jsonl';
export const LOCK_NAME = '.ledger.lock';
/** A segment name without `.jsonl`; object names embed it (sink/layout.ts), so one definition. */
export const SEGMENT_BASE_PATTERN = 'ledger-\\d{8}T\\d{9}Z-[a-z0-9]{8}';
const SEGMENT_RE = new RegExp(`^${SEGMENT_BASE_PATTERN}\\.jsonl$`);
/**
 * Flags for opening anything in a ledger directory: never through a symlink, never blocking on a
 * FIFO or device that carries a segment's name. Callers then fstat and refuse what is not a file.
 */
export const SAFE_OPEN_FLAGS = (fs.constants.O_NOFOLLOW ?? 0) | (fs.constants.O_NONBLOCK ?? 0);
/** Where the name for a plain-file `ledger.jsonl` is reserved (see plainLedgerSegmentName). */
export const PLAIN_LEDGER_NAME_FILE = '.ledger.jsonl.segment';
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
  if (!SEGMENT_RE.test(name)) return undefined;
  const d = name.slice(7, 15); // ledger-YYYYMMDD
  const t = name.slice(16, 25); // THHMMSSmmm
  return Date.UTC(+d.slice(0, 4), +d.slice(4, 6) - 1, +d.slice(6, 8), +t.slice(0, 2), +t.slice(2, 4), +t.slice(4, 6), +t.slice(6, 9));
}

/** Segment files in a ledger directory, oldest first (names sort by creation time). */
export function listSegments(dir: string): string[] {
  return fs
    .readdirSync(dir)
    .filter(isSegmentName)
    .sort();
}

/**
 * The name of the active segment, or undefined when there is none, or when the link points anywhere
 * but at a segment of this directory (a bare segment name): such a link is never followed.
 */
export function activeSegmentName(dir: string): string | undefined {
  try {
    const target = fs.readlinkSync(path.join(dir, ACTIVE_LINK));
    return isSegmentName(target) ? target : undefined;
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

/** How far ahead of the clock a newer segment name may be and still be followed (see below). */
const MAX_ORDER_LEAD_MS = 3_600_000;

/**
 * Creates a fresh segment and points the active link at it. Call with the lock held.
 * Its name sorts after every segment already here (up to an hour ahead of the clock), even when
 * several are created within one millisecond or the clock stepped back: the random suffix alone
 * would order those by chance, and readers take the last name as the newest. Holding the lock
 * makes the check race-free.
 */
export function startNewSegment(dir: string, now: Date = new Date()): string {
  const newest = listSegments(dir).at(-1);
  const newestAt = newest === undefined ? undefined : segmentCreatedAt(newest);
  // A name far ahead of the clock is a hostile file or a clock since fixed: never follow it there.
  const follows = newestAt !== undefined && now.getTime() <= newestAt && newestAt - now.getTime() < MAX_ORDER_LEAD_MS;
  const at = follows ? new Date(newestAt + 1) : now;
  const name = newSegmentName(at);
  fs.closeSync(fs.openSync(path.join(dir, name), fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_WRONLY, FILE_MODE));
  const tmp = path.join(dir, `.${ACTIVE_LINK}.${randomId(8)}.tmp`);
  fs.symlinkSync(name, tmp);
  fs.renameSync(tmp, path.join(dir, ACTIVE_LINK));
  fsyncDirSync(dir);
  return name;
}

interface PlainLedgerReservation {
  dev: number;
  ino: number;
  name: string;
}

function readReservation(dir: string, st: fs.Stats): string | undefined {
  try {
    const v = JSON.parse(fs.readFileSync(path.join(dir, PLAIN_LEDGER_NAME_FILE), 'utf8')) as Partial<PlainLedgerReservation>;
    return v.dev === st.dev && v.ino === st.ino && typeof v.name === 'string' && isSegmentName(v.name) ? v.name : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The segment name of a `ledger.jsonl` that is a plain file (cocoon's Go recorder writes one; so
 * does any simple appender). The shipper ships such a file under this name, and a recorder that
 * later adopts the file renames it to the same name, so object names do not change and nothing is
 * shipped twice. The name is reserved once per file (device + inode) in `.ledger.jsonl.segment`,
 * under the directory lock; with `reserve` false (status) an unreserved file has no name yet.
 */
export function plainLedgerSegmentName(dir: string, st: fs.Stats, reserve: boolean): string | undefined {
  const known = readReservation(dir, st);
  if (known || !reserve) return known;
  return withLedgerLockSync(dir, 8_000, () => {
    const again = readReservation(dir, st);
    if (again) return again;
    // Named for when the file was started, as far as we can tell: names sort by creation time.
    const born = st.birthtimeMs > 0 ? Math.min(st.birthtimeMs, st.mtimeMs) : st.mtimeMs;
    const name = newSegmentName(new Date(Math.min(born, Date.now() - 1)));
    const file = path.join(dir, PLAIN_LEDGER_NAME_FILE);
    const tmp = `${file}.${randomId(8)}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify({ dev: st.dev, ino: st.ino, name } satisfies PlainLedgerReservation), { mode: FILE_MODE });
    fs.renameSync(tmp, file);
    fsyncDirSync(dir);
    return name;
  });
}

/**
 * A `ledger.jsonl` that is a regular file (an older writer, or a copy) becomes a named segment, so
 * nothing in it is lost and the shipper sees it like any other: under the name the shipper may
 * already have reserved for it. Call with the lock held.
 */
function adoptPlainLedgerFile(dir: string): void {
  const link = path.join(dir, ACTIVE_LINK);
  const st = fs.lstatSync(link, { throwIfNoEntry: false });
  if (!st?.isFile()) return;
  // Named before "now", so it sorts before the segment created right after it (names sort by time).
  const name = readReservation(dir, st) ?? newSegmentName(new Date(Math.min(st.mtimeMs, Date.now() - 1)));
  fs.renameSync(link, path.join(dir, name));
  fs.rmSync(path.join(dir, PLAIN_LEDGER_NAME_FILE), { force: true });
}

export interface OpenSegment {
  fd: number;
  name: string;
  dev: number;
  ino: number;
  size: number;
}

/**
 * Opens the active segment for appending, creating the directory and the first segment if needed.
 * The link is followed only to a regular file of this directory named like a segment; a link to
 * anything else (outside the directory, a FIFO, another link) is repointed to a fresh segment
 * under the lock, and `onRepoint` hears why (the recorder logs it).
 */
export function openActiveSegment(dir: string, onRepoint: (reason: string) => void = () => {}): OpenSegment {
  fs.mkdirSync(dir, { recursive: true, mode: DIR_MODE });
  const link = path.join(dir, ACTIVE_LINK);
  const readTarget = (): string | undefined => {
    try {
      return fs.readlinkSync(link);
    } catch {
      return undefined;
    }
  };
  const repoint = (badTarget: string, reason: string): void => {
    withLedgerLockSync(dir, 8_000, () => {
      if (readTarget() !== badTarget) return; // someone else already fixed it
      const fresh = startNewSegment(dir);
      onRepoint(`${reason}; ${ACTIVE_LINK} now points at ${fresh}`);
    });
  };
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
    const target = readTarget();
    if (target === undefined) continue;
    if (!isSegmentName(target)) {
      repoint(target, `${ACTIVE_LINK} pointed at ${JSON.stringify(target)}, which is not a segment of this directory`);
      continue;
    }
    let fd: number;
    try {
      // No O_CREAT: a dangling link must not silently create a file under some other name.
      // O_RDWR so the writer can check whether the last line was torn (see endsWithNewline).
      fd = fs.openSync(path.join(dir, target), fs.constants.O_RDWR | fs.constants.O_APPEND | SAFE_OPEN_FLAGS);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') {
        // Dangling link (its segment was removed by hand): start a new segment.
        withLedgerLockSync(dir, 8_000, () => {
          if (readTarget() === target && !fs.existsSync(path.join(dir, target))) startNewSegment(dir);
        });
        continue;
      }
      if (code === 'ELOOP' || code === 'ENXIO' || code === 'EISDIR') {
        repoint(target, `${ACTIVE_LINK} pointed at ${target}, which is not a regular file (${code})`);
        continue;
      }
      throw err;
    }
    const st = fs.fstatSync(fd);
    if (!st.isFile()) {
      fs.closeSync(fd);
      repoint(target, `${ACTIVE_LINK} pointed at ${target}, which is not a regular file`);
      continue;
    }
    if (readTarget() === target) return { fd, name: target, dev: st.dev, ino: st.ino, size: st.size };
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
