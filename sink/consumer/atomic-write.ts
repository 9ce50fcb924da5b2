/** Whole-file writes that a reader (or a crash) never sees half done: temp file, fsync, rename. */
import { randomBytes } from 'node:crypto';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';

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
        await h.write(chunk.join(''));
        chunk = [];
        size = 0;
      }
    }
    if (chunk.length) await h.write(chunk.join(''));
    await h.sync();
  } catch (err) {
    await h.close();
    await fsp.rm(tmp, { force: true });
    throw err;
  }
  await h.close();
  await fsp.rename(tmp, file);
}
