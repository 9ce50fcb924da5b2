import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { fsyncDir } from '../../src/fs-durable.js';
import { PermanentDestinationError, type Destination, type ObjectInfo, type PutIfAbsentResult, type PutOptions } from './destination.js';
import { removeStaleTempFiles } from '../atomic-file.js';

const META_DIR = '.meta';
const TMP_DIR = '.tmp';
const STALE_TEMP_MS = 3_600_000;


/** Checks an object name is a plain relative path that stays inside the root. */
export function checkObjectName(name: string): string {
  const parts = name.split('/');
  if (name.length === 0 || name.includes('\0') || name.startsWith('/') || parts.some((p) => p === '' || p === '.' || p === '..' || p.startsWith('.'))) {
    throw new Error(`object name ${JSON.stringify(name)} is not a safe relative path`);
  }
  return name;
}

/**
 * A local directory used as a bucket: the embedded default, zero set-up. Objects are files named by
 * their object name; metadata lives in `.meta/<name>.<inode>.json`. Writes are temp file + fsync +
 * link (create-only) or rename (replace), so a reader never sees half an object.
 */
export class LocalDirDestination implements Destination {
  readonly root: string;
  readonly description: string;

  constructor(root: string) {
    this.root = path.resolve(root);
    this.description = `file://${this.root}`;
  }

  private file(name: string): string {
    return path.join(this.root, ...checkObjectName(name).split('/'));
  }

  /**
   * Metadata of one stored file, keyed by the object's inode: the temp file written for an upload
   * becomes the object by link/rename, inode and all. So metadata is in place before the object is
   * visible, and a racing upload that loses the link cannot overwrite the winner's metadata.
   */
  private metaFile(name: string, ino: number): string {
    return path.join(this.root, META_DIR, ...checkObjectName(name).split('/')) + `.${ino}.json`;
  }

  private async writeTemp(body: Buffer): Promise<{ tmp: string; ino: number }> {
    const dir = path.join(this.root, TMP_DIR);
    await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
    const tmp = path.join(dir, `${process.pid}-${randomBytes(6).toString('hex')}`);
    const h = await fsp.open(tmp, 'wx', 0o600);
    let written = false;
    try {
      await h.writeFile(body);
      await h.sync();
      const ino = (await h.stat()).ino;
      written = true;
      return { tmp, ino };
    } finally {
      await h.close();
      // A full disk fails the write: do not leave the partial temp file holding space for good.
      if (!written) await fsp.unlink(tmp).catch(() => {});
    }
  }

  private async writeMeta(name: string, ino: number, options: PutOptions | undefined): Promise<void> {
    const meta = { contentType: options?.contentType, contentEncoding: options?.contentEncoding, metadata: options?.metadata ?? {} };
    const target = this.metaFile(name, ino);
    await fsp.mkdir(path.dirname(target), { recursive: true, mode: 0o700 });
    const { tmp } = await this.writeTemp(Buffer.from(JSON.stringify(meta)));
    await fsp.rename(tmp, target).catch(async (err: unknown) => {
      await fsp.unlink(tmp).catch(() => {});
      throw err;
    });
  }

  private async ensureRoot(): Promise<void> {
    try {
      await fsp.mkdir(this.root, { recursive: true, mode: 0o700 });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') {
        // mkdir -p of a path that is a file: no retry will make it a directory.
        throw new PermanentDestinationError(`bucket directory ${this.root} exists but is not a directory`, `point --dest at a directory (or remove the file ${this.root})`);
      }
      if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS' || code === 'ENOTDIR') {
        throw new PermanentDestinationError(`cannot create bucket directory ${this.root}: ${code}`, `make ${this.root} a writable directory for this user`);
      }
      throw err;
    }
    await this.removeStaleTemps();
  }

  private tempsChecked = false;

  /**
   * Temp files of uploads whose process was killed mid-write (`.tmp/<pid>-<hex>`): removed once per
   * destination when the pid no longer runs here and the file is over an hour old (the bucket
   * directory may be shared with other hosts, whose pids mean nothing here; an hour-old temp file
   * is abandoned anywhere: an upload writes it in one go).
   */
  private async removeStaleTemps(): Promise<void> {
    if (this.tempsChecked) return;
    this.tempsChecked = true;
    await removeStaleTempFiles(path.join(this.root, TMP_DIR), undefined, { pattern: /^(\d+)-[0-9a-f]+$/, minAgeMs: STALE_TEMP_MS });
  }

  async putIfAbsent(name: string, body: Buffer, options?: PutOptions): Promise<PutIfAbsentResult> {
    const target = this.file(name);
    if (fs.existsSync(target)) return 'exists';
    await this.ensureRoot();
    await fsp.mkdir(path.dirname(target), { recursive: true, mode: 0o700 });
    const { tmp, ino } = await this.writeTemp(body);
    let linked = false;
    try {
      await this.writeMeta(name, ino, options);
      // link() fails with EEXIST instead of overwriting: the directory twin of ifGenerationMatch: 0.
      await fsp.link(tmp, target);
      linked = true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return 'exists';
      throw err;
    } finally {
      await fsp.unlink(tmp).catch(() => {});
      if (!linked) await fsp.rm(this.metaFile(name, ino), { force: true });
    }
    await fsyncDir(path.dirname(target));
    return 'created';
  }

  async put(name: string, body: Buffer, options?: PutOptions): Promise<void> {
    const target = this.file(name);
    await this.ensureRoot();
    await fsp.mkdir(path.dirname(target), { recursive: true, mode: 0o700 });
    const previous = await fsp.stat(target).catch(() => undefined);
    const { tmp, ino } = await this.writeTemp(body);
    try {
      await this.writeMeta(name, ino, options);
      await fsp.rename(tmp, target);
    } catch (err) {
      // A full disk can fail the metadata or the rename: leave neither temp file nor stray metadata.
      await fsp.unlink(tmp).catch(() => {});
      await fsp.rm(this.metaFile(name, ino), { force: true });
      throw err;
    }
    if (previous) await fsp.rm(this.metaFile(name, previous.ino), { force: true });
  }

  async get(name: string): Promise<Buffer | undefined> {
    try {
      return await fsp.readFile(this.file(name));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  private async readMeta(name: string, ino: number): Promise<Record<string, string>> {
    try {
      const parsed = JSON.parse(await fsp.readFile(this.metaFile(name, ino), 'utf8')) as { metadata?: Record<string, string> };
      return parsed.metadata ?? {};
    } catch {
      return {};
    }
  }

  async head(name: string): Promise<ObjectInfo | undefined> {
    try {
      const st = await fsp.stat(this.file(name));
      return { name, size: st.size, metadata: await this.readMeta(name, st.ino), updated: Math.floor(st.mtimeMs) };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    // Walk only the deepest directory the prefix names, not the whole bucket.
    const slash = prefix.lastIndexOf('/');
    const baseDir = slash === -1 ? '' : prefix.slice(0, slash);
    const names: { name: string; size: number; ino: number; updated: number }[] = [];
    const walk = async (rel: string): Promise<void> => {
      let entries: fs.Dirent[];
      try {
        entries = await fsp.readdir(path.join(this.root, ...rel.split('/').filter(Boolean)), { withFileTypes: true });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return;
        throw err;
      }
      for (const e of entries) {
        if (e.name.startsWith('.')) continue;
        const childRel = rel ? `${rel}/${e.name}` : e.name;
        if (e.isDirectory()) {
          if (childRel.startsWith(prefix) || prefix.startsWith(childRel + '/')) await walk(childRel);
        } else if (e.isFile() && childRel.startsWith(prefix)) {
          const st = await fsp.stat(path.join(this.root, ...childRel.split('/')));
          names.push({ name: childRel, size: st.size, ino: st.ino, updated: Math.floor(st.mtimeMs) });
        }
      }
    };
    await walk(baseDir);
    names.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const n of names) yield { name: n.name, size: n.size, metadata: await this.readMeta(n.name, n.ino), updated: n.updated };
  }

  async delete(name: string): Promise<void> {
    const st = await fsp.stat(this.file(name)).catch(() => undefined);
    await fsp.rm(this.file(name), { force: true });
    if (st) await fsp.rm(this.metaFile(name, st.ino), { force: true });
  }
}

/** `file:///abs/path`, or a plain path. */
export function localDirFromUrl(url: string): LocalDirDestination {
  return new LocalDirDestination(url.startsWith('file://') ? fileURLToPath(url) : url);
}
