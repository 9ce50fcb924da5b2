import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import { parseLedgerLine } from '../../src/index.js';
import { SAFE_OPEN_FLAGS } from '../../src/ledger-layout.js';

/**
 * emitted_at of the first unshipped entry at `offset` of a ledger file (reads one line at most), or
 * the file's last-modified time if that line is not a valid entry. Undefined if nothing is there.
 */
export async function emittedAtOf(file: string, offset: number, maxLineBytes: number): Promise<string | undefined> {
  let fh: fsp.FileHandle | undefined;
  try {
    fh = await fsp.open(file, fs.constants.O_RDONLY | SAFE_OPEN_FLAGS);
    const st = await fh.stat();
    if (!st.isFile() || st.size <= offset) return undefined;
    const buf = Buffer.alloc(Math.min(maxLineBytes + 1, st.size - offset));
    const { bytesRead } = await fh.read(buf, 0, buf.length, offset);
    const nl = buf.subarray(0, bytesRead).indexOf(0x0a);
    const rec = nl === -1 ? undefined : parseLedgerLine(buf.subarray(0, nl), offset).find((r) => r.type === 'entry');
    return rec?.type === 'entry' ? rec.entry.emitted_at : st.mtime.toISOString();
  } catch {
    return undefined;
  } finally {
    await fh?.close();
  }
}
