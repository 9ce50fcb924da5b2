import { randomBytes } from 'node:crypto';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';

export const STATE_FILE_MODE = 0o600;
export const STATE_DIR_MODE = 0o700;

async function fsyncDir(dir: string): Promise<void> {
  let h: fsp.FileHandle | undefined;
  try {
    h = await fsp.open(dir, 'r');
    await h.sync();
  } catch {
    // Some filesystems refuse fsync on a directory; the rename is still atomic.
  } finally {
    await h?.close();
  }
}

/**
 * Replaces `file` with `data` so that a crash at any point leaves either the old or the new content,
 * never a mix: write a temp file, fsync it, rename over the target, fsync the directory.
 */
export async function writeFileAtomic(file: string, data: string | Buffer, durable = true): Promise<void> {
  const dir = path.dirname(file);
  await fsp.mkdir(dir, { recursive: true, mode: STATE_DIR_MODE });
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const h = await fsp.open(tmp, 'w', STATE_FILE_MODE);
  try {
    await h.writeFile(data);
    if (durable) await h.sync();
  } finally {
    await h.close();
  }
  try {
    await fsp.rename(tmp, file);
  } catch (err) {
    await fsp.unlink(tmp).catch(() => {});
    throw err;
  }
  if (durable) await fsyncDir(dir);
}
