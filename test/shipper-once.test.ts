import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FileRecorder, readLedger } from 'metering-ledger';
import { LocalDirDestination, nodeProgressName, type NodeProgress } from 'metering-ledger/sink';
import { vmStart } from './support/entries.js';
import { checkExactlyOnce, quarantineRecords, shippedEntries, shippedObjects } from './support/shipped.js';
import { spawnCli, spawnTs, waitExit } from './support/spawn.js';
import { tempDir } from './support/tmp.js';
import { cliError } from './support/cli-error.js';

const cleanups: (() => void)[] = [];
afterEach(() => cleanups.splice(0).forEach((c) => c()));

function dirs(): { ledger: string; bucket: string; root: string } {
  const t = tempDir('shipper-once');
  cleanups.push(t.cleanup);
  return { root: t.dir, ledger: path.join(t.dir, 'ledger'), bucket: path.join(t.dir, 'bucket') };
}

async function writeEntries(ledger: string, count: number, maxSegmentBytes?: number): Promise<void> {
  const child = spawnTs('test/support/ledger-writer.ts', [ledger, String(count), '0', String(maxSegmentBytes ?? 64 * 1024 * 1024)]);
  const r = await waitExit(child);
  expect(r.code, r.stderr).toBe(0);
}

async function ship(args: string[]): Promise<{ code: number | null; stderr: string; stdout: string }> {
  const r = await waitExit(spawnCli(['ship', '--once', '--node', 'node-a', ...args]));
  return r;
}

async function ledgerIds(ledger: string): Promise<string[]> {
  const ids: string[] = [];
  for (const seg of fs.readdirSync(ledger).filter((n) => /^ledger-.*\.jsonl$/.test(n)).sort()) {
    for await (const r of readLedger(path.join(ledger, seg))) if (r.type === 'entry') ids.push(r.entry.id);
  }
  return ids;
}

describe('metering ship --once', () => {
  it('ships every line of every segment exactly once, across runs, in small batches', async () => {
    const d = dirs();
    await writeEntries(d.ledger, 3000, 150_000);
    let r = await ship(['--ledger-dir', d.ledger, '--dest', d.bucket, '--batch-bytes', '40KiB']);
    expect(r.code, r.stderr).toBe(0);
    // More lines, more segments; the second run must resume, not repeat.
    await writeEntries(d.ledger, 2000, 150_000);
    r = await ship(['--ledger-dir', d.ledger, '--dest', d.bucket, '--batch-bytes', '40KiB']);
    expect(r.code, r.stderr).toBe(0);
    // A third run with nothing new uploads nothing.
    r = await ship(['--ledger-dir', d.ledger, '--dest', d.bucket, '--batch-bytes', '40KiB']);
    expect(r.code, r.stderr).toBe(0);

    const dest = new LocalDirDestination(d.bucket);
    const objects = await shippedObjects(dest);
    expect(objects.length).toBeGreaterThan(10);
    expect(objects.every((o) => o.cls === 'ledger' && o.node === 'node-a' && o.gen === 0)).toBe(true);
    expect(checkExactlyOnce(d.ledger, objects, { requireComplete: true })).toEqual([]);
    const shipped = shippedEntries(objects).map((e) => e.id);
    const expected = await ledgerIds(d.ledger);
    expect(expected.length).toBe(5000);
    expect(shipped.sort()).toEqual(expected.sort());
    // Object metadata tells a restart what an object covers.
    const o = objects[0]!;
    expect(o.metadata).toMatchObject({ segment: o.segment, node: 'node-a', gen: '0', start: String(o.start), end: String(o.end) });
    expect(Number(o.metadata.lines)).toBe(shippedEntries([o]).length);
    expect(o.metadata.sha256).toMatch(/^[0-9a-f]{64}$/);

    // The node progress object: per writer the last seq shipped, drained => complete_through ~ now.
    const progress = JSON.parse((await dest.get(nodeProgressName('', 'node-a')))!.toString()) as NodeProgress;
    expect(progress.node).toBe('node-a');
    expect(progress.backlog_bytes).toBe(0);
    expect(Object.values(progress.writers).map((w) => w.last_seq).sort()).toEqual([2000, 3000]);
    const lastEmitted = Object.values(progress.writers).map((w) => w.last_emitted_at).sort().at(-1)!;
    expect(progress.complete_through >= lastEmitted).toBe(true);
  });

  it('gzips objects with --gzip, names ending .ndjson.gz', async () => {
    const d = dirs();
    await writeEntries(d.ledger, 500);
    const r = await ship(['--ledger-dir', d.ledger, '--dest', `file://${d.bucket}`, '--gzip']);
    expect(r.code, r.stderr).toBe(0);
    const objects = await shippedObjects(new LocalDirDestination(d.bucket));
    expect(objects.length).toBe(1);
    expect(objects[0]!.name).toMatch(/^ledger\/node=node-a\/dt=\d{4}-\d{2}-\d{2}\/ledger-.*\.0000000000000000-\d{16}\.ndjson\.gz$/);
    expect(checkExactlyOnce(d.ledger, objects, { requireComplete: true })).toEqual([]);
  });

  it('quarantines malformed lines with their source and offset, ships the rest, keeps going', async () => {
    const d = dirs();
    const rec = new FileRecorder({ dir: d.ledger, node: 'node-a' });
    rec.emit(vmStart('vm-1'));
    const seg = fs.readlinkSync(path.join(d.ledger, 'ledger.jsonl'));
    const file = path.join(d.ledger, seg);
    const bad: { offset: number; text: string }[] = [];
    const appendBad = (text: string): void => {
      bad.push({ offset: fs.statSync(file).size, text });
      fs.appendFileSync(file, text + '\n');
    };
    appendBad('garbage that is not json');
    rec.emit(vmStart('vm-2'));
    appendBad('{"v":1,"id":"x"}'); // JSON, but not an entry
    appendBad('{"v":1,' + 'x'.repeat(3000)); // over --max-line-bytes
    rec.emit(vmStart('vm-3'));
    await rec.close();
    const r = await ship(['--ledger-dir', d.ledger, '--dest', d.bucket, '--max-line-bytes', '2KiB']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('malformed lines quarantined');
    const objects = await shippedObjects(new LocalDirDestination(d.bucket));
    expect(shippedEntries(objects).map((e) => e.vm_id)).toEqual(['vm-1', 'vm-2', 'vm-3']);
    const q = quarantineRecords(objects);
    expect(q.map((x) => x.offset)).toEqual(bad.map((b) => b.offset));
    expect(q.every((x) => x.source === seg)).toBe(true);
    expect(Buffer.from(q[0]!.line_base64, 'base64').toString()).toBe('garbage that is not json');
    expect(q[2]!.reason).toMatch(/longer than/);
    expect(q[2]!.length).toBe(bad[2]!.text.length + 1);
    // Ledger and quarantine objects of one range share the range in their names.
    const ledgerObj = objects.find((o) => o.cls === 'ledger')!;
    const quarObj = objects.find((o) => o.cls === 'quarantine')!;
    expect([quarObj.start, quarObj.end]).toEqual([ledgerObj.start, ledgerObj.end]);
    expect(quarObj.name.startsWith('quarantine/node=node-a/')).toBe(true);
    expect(checkExactlyOnce(d.ledger, objects, { requireComplete: true })).toEqual([]);

    const status = await waitExit(spawnCli(['status', '--ledger-dir', d.ledger, '--json']));
    expect(status.code, status.stderr).toBe(0);
    const report = JSON.parse(status.stdout) as { backlog_bytes: number; reported: { counters: { quarantined_lines: number; ledger_lines: number } } };
    expect(report.backlog_bytes).toBe(0);
    expect(report.reported.counters).toMatchObject({ quarantined_lines: 3, ledger_lines: 3 });
  });

  it('ships the torn tail of a finished (rotated, quiet) segment to quarantine, never the active one', async () => {
    const d = dirs();
    const rec = new FileRecorder({ dir: d.ledger, node: 'node-a' });
    rec.emit(vmStart('vm-1'));
    const first = fs.readlinkSync(path.join(d.ledger, 'ledger.jsonl'));
    await rec.close();
    fs.appendFileSync(path.join(d.ledger, first), '{"v":1,"id":"torn-wri'); // a writer killed mid-line
    // Rotate: a new active segment with its own unfinished tail.
    fs.writeFileSync(path.join(d.ledger, 'ledger-29990101T000000000Z-aaaaaaaa.jsonl'), '{"v":1,"partial');
    fs.unlinkSync(path.join(d.ledger, 'ledger.jsonl'));
    fs.symlinkSync('ledger-29990101T000000000Z-aaaaaaaa.jsonl', path.join(d.ledger, 'ledger.jsonl'));
    const r = await ship(['--ledger-dir', d.ledger, '--dest', d.bucket, '--seal-quiet-ms', '0']);
    expect(r.code, r.stderr).toBe(0);
    const objects = await shippedObjects(new LocalDirDestination(d.bucket));
    const q = quarantineRecords(objects);
    expect(q).toHaveLength(1);
    expect(q[0]).toMatchObject({ source: first, reason: 'torn line (no trailing newline)' });
    expect(objects.some((o) => o.segment === 'ledger-29990101T000000000Z-aaaaaaaa.jsonl')).toBe(false);
    const report = JSON.parse((await waitExit(spawnCli(['status', '--ledger-dir', d.ledger, '--json']))).stdout) as { backlog_bytes: number };
    expect(report.backlog_bytes).toBe('{"v":1,"partial'.length);
  });

  it('status works with no shipper ever run: backlog and the oldest unshipped entry from the files', async () => {
    const d = dirs();
    const rec = new FileRecorder({ dir: d.ledger, node: 'node-a' });
    rec.emit(vmStart('vm-1', { emitted_at: '2026-01-02T03:04:05.006Z' }));
    rec.emit(vmStart('vm-2'));
    await rec.close();
    const size = fs.statSync(path.join(d.ledger, fs.readlinkSync(path.join(d.ledger, 'ledger.jsonl')))).size;
    const r = await waitExit(spawnCli(['status', '--ledger-dir', d.ledger, '--json']));
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as { running: boolean; backlog_bytes: number; oldest_unshipped_at: string | null; reported: unknown };
    expect(report).toMatchObject({ running: false, backlog_bytes: size, oldest_unshipped_at: '2026-01-02T03:04:05.006Z', reported: null });
    const text = await waitExit(spawnCli(['status', '--ledger-dir', d.ledger]));
    expect(text.stdout).toMatch(/oldest unshipped: 2026-01-02T03:04:05\.006Z/);
    expect(text.stdout).toMatch(/shipper:\s+not running/);
    await ship(['--ledger-dir', d.ledger, '--dest', d.bucket]);
    const after = JSON.parse((await waitExit(spawnCli(['status', '--ledger-dir', d.ledger, '--json']))).stdout) as { backlog_bytes: number; oldest_unshipped_at: string | null };
    expect(after).toMatchObject({ backlog_bytes: 0, oldest_unshipped_at: null });
  });

  it('an unreadable segment does not hold up the others; --once then exits 1 naming it', async () => {
    const d = dirs();
    await writeEntries(d.ledger, 200);
    // A "segment" that cannot be read (EISDIR; root ignores file modes, so chmod would not do).
    const broken = 'ledger-20000101T000000000Z-broken00.jsonl';
    fs.mkdirSync(path.join(d.ledger, broken));
    const r = await ship(['--ledger-dir', d.ledger, '--dest', d.bucket]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`could not ship 1 segment(s): ${broken}`);
    const objects = await shippedObjects(new LocalDirDestination(d.bucket));
    expect(shippedEntries(objects).length).toBe(200);
  });

  it('documents every flag in --help and refuses bad values with a clear message', async () => {
    const help = await waitExit(spawnCli(['ship', '--help']));
    for (const flag of ['--ledger-dir', '--dest', '--endpoint', '--node', '--once', '--gzip', '--batch-bytes', '--batch-ms', '--rescan-ms', '--progress-ms', '--retention', '--max-line-bytes', '--state-dir', '--metrics-port']) {
      expect(help.stdout).toContain(flag);
    }
    const d = dirs();
    fs.mkdirSync(d.ledger);
    const bad = await waitExit(spawnCli(['ship', '--once', '--ledger-dir', d.ledger, '--dest', d.bucket, '--retention', '7']));
    expect(bad.code).toBe(2);
    expect(cliError(bad.stderr).msg).toMatch(/invalid duration "7"/);
    const badNode = await waitExit(spawnCli(['ship', '--once', '--ledger-dir', d.ledger, '--dest', d.bucket, '--node', '../x']));
    expect(badNode.code).not.toBe(0);
    expect(badNode.stderr).toMatch(/not safe in an object name/);
    const noDir = await waitExit(spawnCli(['ship', '--once', '--ledger-dir', path.join(d.root, 'nope'), '--dest', d.bucket]));
    expect(noDir.code).toBe(1);
    expect(noDir.stderr).toMatch(/does not exist/);
  });
});
