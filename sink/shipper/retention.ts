import type { Stats } from 'node:fs';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { activeSegmentName } from '../../src/index.js';
import type { PositionStore } from './positions.js';
import { positionFits } from './segment-identity.js';

/**
 * Deletes local segments that are safe to forget: sealed (every byte confirmed at the destination,
 * quiet), still the very regular file that was shipped (same inode, same size), not the active
 * segment (checked twice: the link may move meanwhile), and not written for `retentionMs`.
 * `deleted` runs after each unlink, so the caller forgets the segment before the next one.
 */
export async function applyRetention(
  ledgerDir: string,
  store: PositionStore,
  active: string | undefined,
  retentionMs: number,
  deleted: (name: string, st: Stats) => Promise<void>,
): Promise<void> {
  const now = Date.now();
  for (const [name, pos] of store.entries()) {
    if (!pos.sealed || name === active) continue;
    const file = path.join(ledgerDir, name);
    const st = fs.lstatSync(file, { throwIfNoEntry: false });
    if (!st?.isFile() || !positionFits(pos, st) || st.size !== pos.position) continue;
    if (now - st.mtimeMs < retentionMs) continue;
    if (activeSegmentName(ledgerDir) === name) continue;
    await fsp.unlink(file);
    await deleted(name, st);
  }
}
