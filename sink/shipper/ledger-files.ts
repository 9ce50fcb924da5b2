/**
 * What in a ledger directory is shipped, and how it is opened. Only regular files: every segment
 * (named `ledger-<time>-<id>.jsonl`) and a `ledger.jsonl` that is itself a plain file (cocoon's Go
 * recorder writes one), shipped under the segment name reserved for it (plainLedgerSegmentName).
 * Symlinks, FIFOs, sockets, devices and directories carrying a segment's name are reported and
 * never opened: a FIFO would block the open forever, a symlink could lead out of the directory.
 */
import type { Stats } from 'node:fs';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { ACTIVE_LINK, activeSegmentName, isSegmentName } from '../../src/index.js';
import { plainLedgerSegmentName, SAFE_OPEN_FLAGS } from '../../src/ledger-layout.js';

export interface LedgerFile {
  /** The segment name: object names derive from it. */
  name: string;
  /** Absolute path (for a plain ledger.jsonl: that file, not a segment of that name). */
  path: string;
  /** Writers append to it now: its unfinished tail is not shipped, it is never sealed. */
  active: boolean;
  /** A plain-file ledger.jsonl, not (yet) adopted into a segment. */
  plain: boolean;
}

export interface SkippedFile {
  name: string;
  reason: string;
}

export interface LedgerScan {
  files: LedgerFile[];
  skipped: SkippedFile[];
  /** A plain ledger.jsonl with no reserved name yet (only when scanning without reserving). */
  unnamedPlain?: Stats;
}

/** Thrown by openLedgerFile for anything but a regular file. */
export class NotRegularFileError extends Error {
  constructor(
    readonly file: string,
    readonly kind: string,
  ) {
    super(`${file} is ${kind}, not a regular file: not opened`);
    this.name = 'NotRegularFileError';
  }
}

export function kindOf(st: Stats): string {
  if (st.isSymbolicLink()) return 'a symlink';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  if (st.isDirectory()) return 'a directory';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  return st.isFile() ? 'a regular file' : 'not a regular file';
}

/**
 * Lists what to ship. With `reserve`, a plain ledger.jsonl gets its segment name reserved (the
 * shipper); without, an unreserved one comes back as `unnamedPlain` (status, which writes nothing).
 */
export function scanLedgerDir(dir: string, reserve: boolean): LedgerScan {
  const active = activeSegmentName(dir);
  const files: LedgerFile[] = [];
  const skipped: SkippedFile[] = [];
  let unnamedPlain: Stats | undefined;
  for (const name of fs.readdirSync(dir).filter(isSegmentName)) {
    const st = fs.lstatSync(path.join(dir, name), { throwIfNoEntry: false });
    if (!st) continue;
    if (st.isFile()) files.push({ name, path: path.join(dir, name), active: name === active, plain: false });
    else skipped.push({ name, reason: `${kindOf(st)} named like a segment${st.isSymbolicLink() ? ` (to ${readlinkOr(path.join(dir, name))})` : ''}; segments are regular files` });
  }
  const link = path.join(dir, ACTIVE_LINK);
  const lst = fs.lstatSync(link, { throwIfNoEntry: false });
  if (lst?.isFile()) {
    try {
      const name = plainLedgerSegmentName(dir, lst, reserve);
      if (name === undefined) unnamedPlain = lst;
      else if (!files.some((f) => f.name === name)) files.push({ name, path: link, active: true, plain: true });
    } catch (err) {
      skipped.push({ name: ACTIVE_LINK, reason: `a plain file, but its segment name cannot be reserved: ${(err as Error).message}` });
    }
  } else if (lst?.isSymbolicLink() && active === undefined) {
    skipped.push({ name: ACTIVE_LINK, reason: `a symlink to ${readlinkOr(link)}, which is not a segment of this directory; not followed` });
  } else if (lst && !lst.isSymbolicLink()) {
    skipped.push({ name: ACTIVE_LINK, reason: `${kindOf(lst)}; expected a symlink to a segment or a plain file` });
  }
  files.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { files, skipped, ...(unnamedPlain ? { unnamedPlain } : {}) };
}

function readlinkOr(p: string): string {
  try {
    return JSON.stringify(fs.readlinkSync(p));
  } catch {
    return 'an unreadable target';
  }
}

/**
 * Opens a ledger file for reading without following a symlink and without blocking on a FIFO
 * (O_NOFOLLOW | O_NONBLOCK), then refuses anything fstat says is not a regular file.
 */
export async function openLedgerFile(file: string): Promise<fsp.FileHandle> {
  const fh = await fsp.open(file, fs.constants.O_RDONLY | SAFE_OPEN_FLAGS);
  const st = await fh.stat();
  if (!st.isFile()) {
    await fh.close();
    throw new NotRegularFileError(file, kindOf(st));
  }
  return fh;
}
