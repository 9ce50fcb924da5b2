/**
 * The recorder in a hostile or half-broken ledger directory, with real writer processes:
 * - `ledger.jsonl` pointing outside the directory (or at a FIFO named like a segment) is never
 *   followed: the link is repointed to a fresh segment under the lock, with a warning;
 * - a directory that cannot be written any more does not drop entries at rotation time: the open
 *   segment keeps taking them.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FileRecorder, parseLedgerBuffer } from 'metering-ledger';
import { vmStart } from './support/entries.js';
import { spawnTs, waitExit } from './support/spawn.js';
import { tempDir } from './support/tmp.js';

const cleanups: (() => void)[] = [];
afterEach(() => cleanups.splice(0).forEach((c) => c()));

const SEGMENT = 'ledger-20260101T000000000Z-aaaaaaaa.jsonl';
const segmentsOf = (dir: string): string[] => fs.readdirSync(dir).filter((n) => /^ledger-.*\.jsonl$/.test(n)).sort();

function idsIn(dir: string): string[] {
  const out: string[] = [];
  for (const s of segmentsOf(dir)) {
    const st = fs.lstatSync(path.join(dir, s));
    if (!st.isFile()) continue;
    for (const r of parseLedgerBuffer(fs.readFileSync(path.join(dir, s)))) if (r.type === 'entry') out.push(r.entry.id);
  }
  return out;
}

async function writer(dir: string, count: number, maxSegmentBytes = 64 * 1024 * 1024, extra: Parameters<typeof spawnTs>[2] = {}): Promise<{ ids: string[]; stderr: string; stats: Record<string, number> }> {
  const r = await waitExit(spawnTs('test/support/ledger-writer.ts', [dir, String(count), '0', String(maxSegmentBytes), 'node-a'], { env: { ...process.env, PRINT_IDS: '1' }, ...extra }));
  expect(r.code, r.stderr).toBe(0);
  const summary = JSON.parse(r.stderr.trim().split('\n').at(-1)!) as { stats: Record<string, number> };
  return { ids: r.stdout.split('\n').filter(Boolean), stderr: r.stderr, stats: summary.stats };
}

describe('recorder: links that lead out of the ledger directory', () => {
  for (const target of ['outside-segment', 'outside-file'] as const) {
    it(`ledger.jsonl -> ${target === 'outside-segment' ? 'a segment-named file in another directory' : '/etc/passwd-like file'}: never appended to`, async () => {
      const t = tempDir('rec-link');
      cleanups.push(t.cleanup);
      const dir = path.join(t.dir, 'ledger');
      const outside = path.join(t.dir, 'outside');
      fs.mkdirSync(dir);
      fs.mkdirSync(outside);
      const victim = path.join(outside, target === 'outside-segment' ? SEGMENT : 'passwd');
      fs.writeFileSync(victim, 'root:x:0:0:root:/root:/bin/bash\n');
      fs.symlinkSync(victim, path.join(dir, 'ledger.jsonl'));
      const { ids, stderr, stats } = await writer(dir, 300);
      expect(fs.readFileSync(victim, 'utf8')).toBe('root:x:0:0:root:/root:/bin/bash\n');
      expect(stats.written).toBe(300);
      expect(idsIn(dir).sort()).toEqual([...ids].sort());
      const now = fs.readlinkSync(path.join(dir, 'ledger.jsonl'));
      expect(now).not.toContain('/');
      expect(stderr).toContain('repointed it to a fresh segment');
      expect(stderr).toContain(victim);
    });
  }

  it('ledger.jsonl -> a FIFO named like a segment: the writer neither hangs nor writes into it', async () => {
    const t = tempDir('rec-fifo');
    cleanups.push(t.cleanup);
    const dir = path.join(t.dir, 'ledger');
    fs.mkdirSync(dir);
    execFileSync('mkfifo', [path.join(dir, SEGMENT)]);
    fs.symlinkSync(SEGMENT, path.join(dir, 'ledger.jsonl'));
    const { ids, stderr } = await writer(dir, 200);
    expect(ids).toHaveLength(200);
    expect(idsIn(dir).sort()).toEqual([...ids].sort());
    expect(fs.lstatSync(path.join(dir, SEGMENT)).isFIFO()).toBe(true);
    expect(fs.readlinkSync(path.join(dir, 'ledger.jsonl'))).not.toBe(SEGMENT);
    expect(stderr).toContain('not a regular file');
  });

  it('a segment-named symlink as the link target (link to link): repointed, the second link untouched', async () => {
    const t = tempDir('rec-link2');
    cleanups.push(t.cleanup);
    const dir = path.join(t.dir, 'ledger');
    fs.mkdirSync(dir);
    const victim = path.join(t.dir, 'victim');
    fs.writeFileSync(victim, 'keep\n');
    fs.symlinkSync(victim, path.join(dir, SEGMENT));
    fs.symlinkSync(SEGMENT, path.join(dir, 'ledger.jsonl'));
    const { ids } = await writer(dir, 50);
    expect(fs.readFileSync(victim, 'utf8')).toBe('keep\n');
    expect(idsIn(dir).sort()).toEqual([...ids].sort());
  });
});

describe('recorder: a directory that cannot be written at rotation time', () => {
  it('keeps appending to the open segment instead of dropping entries', async (ctx) => {
    if (process.getuid?.() !== 0) {
      ctx.skip('needs root to run the writer as another user (as root, permissions do not apply)');
      return;
    }
    const t = tempDir('rec-unwritable');
    cleanups.push(t.cleanup);
    fs.chmodSync(t.dir, 0o755);
    const dir = path.join(t.dir, 'ledger');
    // The directory and its first segment exist; then the directory becomes read-only to its owner.
    const rec = new FileRecorder({ dir, node: 'node-a' });
    rec.emit(vmStart('first'));
    await rec.close();
    for (const n of [dir, ...fs.readdirSync(dir).map((f) => path.join(dir, f))]) fs.lchownSync(n, 65534, 65534);
    fs.chmodSync(dir, 0o500);
    cleanups.unshift(() => fs.chmodSync(dir, 0o700));
    const { ids, stderr, stats } = await writer(dir, 1000, 8 * 1024, { uid: 65534, gid: 65534 });
    expect(stats.droppedWrite, stderr).toBe(0);
    expect(stats.written).toBe(1000);
    expect(ids).toHaveLength(1000);
    expect(idsIn(dir).filter((id) => ids.includes(id))).toHaveLength(1000);
    expect(stderr).toContain('cannot rotate the ledger segment');
  });
});
