import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { listSegments } from 'metering-ledger';
import { readAll } from './support/ledger.js';
import { spawnTs, waitExit } from './support/spawn.js';
import { tempDir } from './support/tmp.js';

const tmp = tempDir('multiproc');
afterAll(tmp.cleanup);
const WRITER = 'test/fixtures/ledger-writer.ts';

describe('several processes writing one ledger directory', () => {
  test('SIGKILL mid-stream and rotation under concurrent writers: every acknowledged entry is in the ledger exactly once', async () => {
    const dir = path.join(tmp.dir, 'kill');
    const writers = 6;
    const children = Array.from({ length: writers }, (_, i) => {
      const acks = path.join(tmp.dir, `acks-${i}`);
      const child = spawnTs(WRITER, ['--dir', dir, '--count', '10000', '--acks', acks, '--max-segment-bytes', String(64 * 1024), '--pause-every', '20']);
      return { child, acks, done: waitExit(child), killed: false };
    });
    // Kill half of them at random moments once they are writing.
    await Promise.all(
      children.slice(0, 3).map(async (c) => {
        for (let i = 0; i < 200 && !(fs.existsSync(c.acks) && fs.statSync(c.acks).size > 0); i++) await new Promise((r) => setTimeout(r, 25));
        await new Promise((r) => setTimeout(r, 50 + Math.random() * 400));
        c.killed = c.child.kill('SIGKILL');
      }),
    );
    const results = await Promise.all(children.map((c) => c.done));
    results.forEach((r, i) => {
      if (children[i]!.killed && r.signal === 'SIGKILL') return;
      expect(r.code, r.stderr).toBe(0);
    });
    const killedCount = results.filter((r) => r.signal === 'SIGKILL').length;
    expect(killedCount).toBeGreaterThan(0);

    const records = await readAll(dir);
    const entries = records.flatMap((r) => (r.type === 'entry' ? [r.entry] : []));
    const invalid = records.filter((r) => r.type === 'invalid');
    // Only a writer killed mid-write can leave a torn line; each at most one.
    expect(invalid.length).toBeLessThanOrEqual(killedCount);
    for (const r of invalid) expect(r.type === 'invalid' && r.reason).toMatch(/torn|not valid JSON/);

    const counts = new Map<string, number>();
    for (const e of entries) counts.set(e.id, (counts.get(e.id) ?? 0) + 1);
    expect([...counts.values()].every((n) => n === 1)).toBe(true);
    let acked = 0;
    for (const c of children) {
      for (const id of fs.readFileSync(c.acks, 'utf8').split('\n').filter(Boolean)) {
        acked++;
        expect(counts.get(id), `acknowledged entry ${id} missing`).toBe(1);
      }
    }
    expect(acked).toBeGreaterThan(writers * 500);

    // Per writer, seqs are 1..n without gaps (a killed writer may only lose its unacknowledged last line).
    const byWriter = new Map<string, number[]>();
    for (const e of entries) byWriter.set(e.writer, [...(byWriter.get(e.writer) ?? []), e.seq]);
    expect(byWriter.size).toBe(writers);
    for (const seqs of byWriter.values()) {
      seqs.sort((a, b) => a - b);
      expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => i + 1));
    }
    // Rotation happened repeatedly, and every sealed segment ends on a line boundary unless a kill tore it.
    // (How many times depends on scheduling: a loaded machine takes the rotation lock less often, so
    // segments grow past the limit; 9 segments were seen at load average 10 where 100+ are usual.)
    const segments = listSegments(dir);
    expect(segments.length).toBeGreaterThanOrEqual(3);
    const tornEnds = segments.filter((s) => !fs.readFileSync(path.join(dir, s)).subarray(-1).equals(Buffer.from('\n'))).length;
    expect(tornEnds).toBeLessThanOrEqual(killedCount);
  });

  test('many short-lived processes emitting one entry each share one segment, not one file each', async () => {
    const dir = path.join(tmp.dir, 'short');
    const runs = Array.from({ length: 10 }, () => waitExit(spawnTs(WRITER, ['--dir', dir, '--count', '1'])));
    const results = await Promise.all(runs);
    for (const r of results) expect(r.code, r.stderr).toBe(0);
    expect(listSegments(dir)).toHaveLength(1);
    const entries = (await readAll(dir)).filter((r) => r.type === 'entry');
    expect(entries).toHaveLength(10);
    expect(new Set(entries.map((r) => (r.type === 'entry' ? r.entry.writer : ''))).size).toBe(10);
  });
});
