/** Whole-file writes that a reader (or a crash) never sees half done: temp file, fsync, rename. */
import { randomBytes } from 'node:crypto';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';

/**
 * FileHandle.write reports a short write (a disk that fills mid-call) as success with fewer bytes;
 * keep writing the rest, so a full disk surfaces as ENOSPC instead of a silently truncated file.
 */
async function writeAll(h: fsp.FileHandle, text: string): Promise<void> {
  const buf = Buffer.from(text);
  for (let off = 0; off < buf.length; ) off += (await h.write(buf, off, buf.length - off)).bytesWritten;
}

export async function writeFileAtomic(file: string, data: string | Buffer): Promise<void> {
  await fsp.mkdir(path.dirname(file), { recursive: true });
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const h = await fsp.open(tmp, 'wx', 0o644);
  try {
    await h.writeFile(data);
    await h.sync();
  } catch (err) {
    await h.close();
    await fsp.rm(tmp, { force: true });
    throw err;
  }
  await h.close();
  await fsp.rename(tmp, file);
}

/** Writes rows as ndjson atomically, in chunks: the whole file never has to exist as one string. */
export async function writeNdjsonAtomic(file: string, rows: readonly unknown[]): Promise<void> {
  await fsp.mkdir(path.dirname(file), { recursive: true });
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const h = await fsp.open(tmp, 'wx', 0o644);
  try {
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
    await h.sync();
  } catch (err) {
    await h.close();
    await fsp.rm(tmp, { force: true });
    throw err;
  }
  await h.close();
  await fsp.rename(tmp, file);
}
