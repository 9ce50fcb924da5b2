/**
 * Whole-file writes that neither a reader nor a crash ever sees half done: temp file in the same
 * directory, fsync, rename over the target, fsync the directory. Shared by the shipper (positions,
 * status) and the consumer (state, outputs). Private by default (0600 files, 0700 directories):
 * positions, state and usage are billing data.
 */
import { randomBytes } from 'node:crypto';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { fsyncDir } from '../src/fs-durable.js';
import { processAlive } from './process-alive.js';

export const PRIVATE_FILE_MODE = 0o600;
export const PRIVATE_DIR_MODE = 0o700;

export interface AtomicWriteOptions {
  /** File mode of the new file. Default 0600. */
  mode?: number;
  /** fsync the file and its directory. Default true; false for files that are only informative. */
  durable?: boolean;
}

/**
 * FileHandle.write reports a short write (the disk filled mid-call) as success with fewer bytes;
 * keep writing the rest, so a full disk surfaces as ENOSPC instead of a silently truncated file.
 */
async function writeAll(h: fsp.FileHandle, text: string): Promise<void> {
  const buf = Buffer.from(text);
  for (let off = 0; off < buf.length; ) off += (await h.write(buf, off, buf.length - off)).bytesWritten;
}

/** Writes through `fill` into a temp file, then atomically replaces `file` with it. */
async function replaceAtomically(file: string, options: AtomicWriteOptions, fill: (h: fsp.FileHandle) => Promise<void>): Promise<void> {
  const durable = options.durable ?? true;
  const dir = path.dirname(file);
  await fsp.mkdir(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const h = await fsp.open(tmp, 'wx', options.mode ?? PRIVATE_FILE_MODE);
  try {
    await fill(h);
    if (durable) await h.sync();
    await h.close();
    await fsp.rename(tmp, file);
  } catch (err) {
    await h.close().catch(() => {});
    await fsp.rm(tmp, { force: true });
    throw err;
  }
  if (durable) await fsyncDir(dir);
}

/**
 * Atomic replacement for a file another writer produces (a database's COPY): `produce` writes the
 * temp path it is given; the file is then made private, fsynced and renamed over `file`.
 */
export async function produceFileAtomic(file: string, produce: (tmp: string) => Promise<void>, options: AtomicWriteOptions = {}): Promise<void> {
  const durable = options.durable ?? true;
  const dir = path.dirname(file);
  await fsp.mkdir(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    await produce(tmp);
    await fsp.chmod(tmp, options.mode ?? PRIVATE_FILE_MODE);
    if (durable) {
      const h = await fsp.open(tmp, 'r+');
      try {
        await h.sync();
      } finally {
        await h.close();
      }
    }
    await fsp.rename(tmp, file);
  } catch (err) {
    await fsp.rm(tmp, { force: true });
    throw err;
  }
  if (durable) await fsyncDir(dir);
}

export async function writeFileAtomic(file: string, data: string | Buffer, options: AtomicWriteOptions = {}): Promise<void> {
  await replaceAtomically(file, options, (h) => h.writeFile(data));
}

/** Writes rows as ndjson atomically, in ~1 MiB chunks: the whole file never exists as one string. */
export async function writeNdjsonAtomic(file: string, rows: Iterable<unknown>, options: AtomicWriteOptions = {}): Promise<void> {
  await replaceAtomically(file, options, async (h) => {
    let chunk: string[] = [];
    let size = 0;
    for (const r of rows) {
      const line = JSON.stringify(r) + '\n';
      chunk.push(line);
      size += line.length;
      if (size >= 1 << 20) {
        await writeAll(h, chunk.join(''));
        chunk = [];
        size = 0;
      }
    }
    if (chunk.length) await writeAll(h, chunk.join(''));
  });
}


/** The temp files writeFileAtomic writes: `.<name>.<pid>.<hex>.tmp` (group 1 is the pid). */
const ATOMIC_TEMP_RE = /^\..+\.(\d+)\.[0-9a-f]+\.tmp$/;

export interface StaleTempOptions {
  /** How temp files are named; group 1 is the writer's pid. Default: writeFileAtomic's names. */
  pattern?: RegExp;
  /** Also require a regular file at least this old (a directory other hosts write to, whose pids mean nothing here). */
  minAgeMs?: number;
}

/**
 * Removes the temp files a process killed mid-write left behind in `dir` (a pid that no longer
 * runs). Call it where only this process writes (the shipper and consumer hold their lock), or with
 * `minAgeMs` where others may. Never throws: litter is not worth failing for.
 */
export async function removeStaleTempFiles(dir: string, log?: { info(obj: object, msg: string): void }, options: StaleTempOptions = {}): Promise<string[]> {
  const pattern = options.pattern ?? ATOMIC_TEMP_RE;
  const removed: string[] = [];
  let names: string[];
  try {
    names = await fsp.readdir(dir);
  } catch {
    return removed;
  }
  const now = Date.now();
  for (const name of names) {
    const m = pattern.exec(name);
    if (!m || Number(m[1]) === process.pid || processAlive(Number(m[1]))) continue;
    if (options.minAgeMs !== undefined) {
      const st = await fsp.lstat(path.join(dir, name)).catch(() => undefined);
      if (!st?.isFile() || now - st.mtimeMs < options.minAgeMs) continue;
    }
    try {
      await fsp.rm(path.join(dir, name), { force: true });
      removed.push(name);
    } catch {
      // Not ours to remove after all (permissions): leave it.
    }
  }
  if (removed.length > 0) log?.info({ dir, removed }, 'removed temp files left by a process that was killed mid-write');
  return removed;
}
