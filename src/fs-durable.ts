/**
 * fsync of a directory, so a rename or link in it survives power loss. One definition for the
 * recorder (segment creation), the shipper (positions) and the destinations (local bucket).
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';

export function fsyncDirSync(dir: string): void {
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

export async function fsyncDir(dir: string): Promise<void> {
  let h: fsp.FileHandle | undefined;
  try {
    h = await fsp.open(dir, 'r');
    await h.sync();
  } catch {
    // Some filesystems refuse fsync on a directory; the rename is still atomic.
  } finally {
    await h?.close().catch(() => {});
  }
}
