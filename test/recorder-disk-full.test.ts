import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { FileRecorder } from 'metering-ledger';
import { vmStart } from './support/entries.js';
import { readAll } from './support/ledger.js';
import { fillDisk, mountTmpfs } from './support/tmpfs.js';
import { memoryLogger } from './support/tmp.js';

const mount = mountTmpfs(256 * 1024);
const skip = 'skip' in mount ? mount.skip : undefined;
if (skip) console.warn(skip);
afterAll(() => {
  if (!('skip' in mount)) mount.unmount();
});

describe.skipIf(skip !== undefined)('disk full', () => {
  test('emit never throws; drops are counted and logged (rate-limited); the ledger stays parseable; recording resumes', async () => {
    const root = (mount as { dir: string }).dir;
    const dir = path.join(root, 'metering');
    const { logger, records } = await memoryLogger();
    const rec = new FileRecorder({ dir, node: 'n', logger, checkIntervalMs: 0 });
    rec.emit(vmStart('before'));
    const ballast = fillDisk(root, 3000);

    const results: (string | undefined)[] = [];
    for (let i = 0; i < 300; i++) results.push(rec.emit(vmStart(`full-${i}`)));
    const stats = rec.stats();
    expect(stats.droppedWrite).toBeGreaterThan(250);
    expect(stats.written + stats.droppedWrite).toBe(301);
    expect(results.filter((r) => r === undefined)).toHaveLength(stats.droppedWrite);
    // 300 failures, but the log says so a handful of times, with the count.
    const warnings = records.filter((r) => r.msg === 'metering: ledger write failed; entry dropped');
    expect(warnings.length).toBeGreaterThan(0);
    expect(warnings.length).toBeLessThanOrEqual(2);
    expect(warnings[0]).toMatchObject({ code: 'ENOSPC' });

    fs.rmSync(ballast);
    const after = rec.emit(vmStart('after'));
    expect(after).toBeTypeOf('string');
    await rec.close();

    const all = await readAll(dir);
    const entries = all.flatMap((r) => (r.type === 'entry' ? [r.entry] : []));
    // At most one fragment (a write cut short by the full disk), and never at the expense of the next entry.
    expect(all.filter((r) => r.type === 'invalid').length).toBeLessThanOrEqual(1);
    expect(entries[0]!.vm_id).toBe('before');
    expect(entries.at(-1)!.vm_id).toBe('after');
    expect(entries.at(-1)!.id).toBe(after);
    // Every emit that returned an id is there; the seq gaps are exactly the drops.
    const written = new Set(entries.map((e) => e.id));
    for (const id of results) if (id !== undefined) expect(written.has(id)).toBe(true);
    const lastSeq = entries.at(-1)!.seq;
    expect(lastSeq - entries.length).toBe(stats.droppedWrite);
  });
});
