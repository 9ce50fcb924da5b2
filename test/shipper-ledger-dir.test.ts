/**
 * The shipper's side of the ledger directory, through real files and real `metering` processes:
 * a plain ledger.jsonl (cocoon's Go recorder) is shipped and stays shipped once across a later
 * adoption; a segment cut short and regrown is shipped again from its first changed range; FIFOs
 * and symlinks named like segments are never opened or followed.
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CaptureRecorder, FileRecorder, parseLedgerBuffer, serializeEntry } from 'metering-ledger';
import { LocalDirDestination } from 'metering-ledger/sink';
import { vmStart } from './support/entries.js';
import { checkExactlyOnce, quarantineRecords, shippedEntries, shippedObjects } from './support/shipped.js';
import { spawnCli, spawnTs, waitExit, type Exited } from './support/spawn.js';
import { tempDir } from './support/tmp.js';
import { pollUntil } from './support/until.js';

const cleanups: (() => void)[] = [];
afterEach(() => cleanups.splice(0).forEach((c) => c()));

function dirs(label: string): { root: string; ledger: string; bucket: string } {
  const t = tempDir(label);
  cleanups.push(t.cleanup);
  return { root: t.dir, ledger: path.join(t.dir, 'ledger'), bucket: path.join(t.dir, 'bucket') };
}

/** Runs a CLI command; a run that hangs is killed and fails the test (it must end by itself). */
async function cli(args: string[], boundMs = 120_000): Promise<Exited> {
  const child = spawnCli(args);
  const timer = setTimeout(() => child.kill('SIGKILL'), boundMs);
  const r = await waitExit(child);
  clearTimeout(timer);
  if (r.signal === 'SIGKILL') throw new Error(`metering ${args.join(' ')} did not end within ${boundMs} ms:\n${r.stderr.slice(-2000)}`);
  return r;
}

const ship = (d: { ledger: string; bucket: string }, ...extra: string[]): Promise<Exited> => cli(['ship', '--once', '--ledger-dir', d.ledger, '--dest', d.bucket, '--node', 'node-a', '--seal-quiet-ms', '0', ...extra]);

async function status(ledger: string): Promise<{ backlog_bytes: number; segments: { name: string; plain?: boolean }[]; skipped: { name: string; reason: string }[] }> {
  const r = await cli(['status', '--ledger-dir', ledger, '--json']);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as never;
}

/** Lines as cocoon's Go recorder writes them: serialized entries appended to a plain ledger.jsonl. */
function goRecorderLines(n: number, tag: string): { text: string; ids: string[] } {
  const rec = new CaptureRecorder({ node: 'node-a' });
  for (let i = 0; i < n; i++) rec.emit(vmStart(`${tag}-${i}`));
  const entries = rec.entries();
  return { text: entries.map((e) => serializeEntry(e) + '\n').join(''), ids: entries.map((e) => e.id) };
}

async function writeEntries(ledger: string, count: number, maxSegmentBytes = 64 * 1024 * 1024): Promise<string[]> {
  const r = await waitExit(spawnTs('test/support/ledger-writer.ts', [ledger, String(count), '0', String(maxSegmentBytes), 'node-a'], { env: { ...process.env, PRINT_IDS: '1' } }));
  expect(r.code, r.stderr).toBe(0);
  return r.stdout.split('\n').filter(Boolean);
}

describe('shipper: a plain ledger.jsonl', () => {
  it('is shipped like a segment; status counts it; adopting it later into a segment ships nothing twice', async () => {
    const d = dirs('plain-ledger');
    fs.mkdirSync(d.ledger);
    const plain = path.join(d.ledger, 'ledger.jsonl');
    const first = goRecorderLines(300, 'go');
    fs.appendFileSync(plain, first.text);
    fs.appendFileSync(plain, '{"v":1,"torn'); // a write in progress: not shipped yet

    const before = await status(d.ledger);
    expect(before.backlog_bytes).toBe(fs.statSync(plain).size);

    let r = await ship(d);
    expect(r.code, r.stderr).toBe(0);
    const dest = new LocalDirDestination(d.bucket);
    let objects = await shippedObjects(dest);
    expect(shippedEntries(objects).map((e) => e.id)).toEqual(first.ids);
    const segment = objects[0]!.segment;
    expect(objects.every((o) => o.segment === segment && o.gen === 0)).toBe(true);
    const afterFirst = await status(d.ledger);
    expect(afterFirst.backlog_bytes).toBe('{"v":1,"torn'.length); // only the unfinished line
    expect(afterFirst.segments).toEqual([expect.objectContaining({ name: segment, plain: true })]);

    // The Go writer finishes its line and writes more; then our recorder opens the directory and
    // adopts the plain file into a named segment (the reserved name), and writes on.
    const second = goRecorderLines(100, 'go2');
    fs.appendFileSync(plain, '_tail"}\n' + second.text);
    const rec = new FileRecorder({ dir: d.ledger, node: 'node-a' });
    expect(fs.lstatSync(plain).isSymbolicLink()).toBe(true);
    expect(fs.existsSync(path.join(d.ledger, segment))).toBe(true);
    const ours: string[] = [];
    for (let i = 0; i < 50; i++) ours.push(rec.emit(vmStart(`ts-${i}`))!);
    await rec.close();

    r = await ship(d);
    expect(r.code, r.stderr).toBe(0);
    objects = await shippedObjects(dest);
    expect(checkExactlyOnce(d.ledger, objects, { requireComplete: true })).toEqual([]);
    const ids = shippedEntries(objects).map((e) => e.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect([...ids].sort()).toEqual([...first.ids, ...second.ids, ...ours].sort());
    expect(objects.every((o) => o.gen === 0)).toBe(true);
    expect(quarantineRecords(objects).map((q) => q.source)).toEqual([segment]); // the torn-then-finished line
    expect((await status(d.ledger)).backlog_bytes).toBe(0);
  });
});

describe('shipper: a segment cut short and regrown past the shipped position', () => {
  it('ships every new entry once, from the first changed range, under a new generation; reports it', async () => {
    const d = dirs('regrow');
    await writeEntries(d.ledger, 1000);
    let r = await ship(d, '--batch-bytes', '16KiB');
    expect(r.code, r.stderr).toBe(0);
    const seg = fs.readdirSync(d.ledger).find((n) => /^ledger-.*\.jsonl$/.test(n))!;
    const file = path.join(d.ledger, seg);
    const size = fs.statSync(file).size;
    // A power loss of unsynced bytes, or a restore from an older backup.
    execFileSync('truncate', ['-s', String(Math.floor(size / 2)), file]);
    const fresh = await writeEntries(d.ledger, 1000);
    expect(fs.statSync(file).size).toBeGreaterThan(size);
    // Before the shipper looks again, status must not hide the new bytes behind the old position.
    expect((await status(d.ledger)).backlog_bytes).toBe(fs.statSync(file).size);

    r = await ship(d, '--batch-bytes', '16KiB');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('replaced or truncated');
    const objects = await shippedObjects(new LocalDirDestination(d.bucket));
    const shipped = new Set(shippedEntries(objects).map((e) => e.id));
    const missing = fresh.filter((id) => !shipped.has(id));
    expect(missing, `${missing.length} of the 1000 new entries never shipped`).toEqual([]);
    // Every entry in the file now is shipped, and the current objects tile the file exactly once.
    const inFile = parseLedgerBuffer(fs.readFileSync(file)).flatMap((x) => (x.type === 'entry' ? [x.entry.id] : []));
    expect(inFile.filter((id) => !shipped.has(id))).toEqual([]);
    expect(checkExactlyOnce(d.ledger, objects, { requireComplete: true })).toEqual([]);
    // Only what changed was shipped again: generation 1 starts at the first changed range, not at 0.
    const g1 = objects.filter((o) => o.gen === 1);
    expect(g1.length).toBeGreaterThan(0);
    const g1Start = Math.min(...g1.map((o) => o.start));
    expect(g1Start).toBeGreaterThan(0);
    expect(g1Start).toBeLessThanOrEqual(Math.floor(size / 2));
    const st = await status(d.ledger);
    expect(st.backlog_bytes).toBe(0);
    const report = JSON.parse(fs.readFileSync(path.join(d.ledger, '.shipper', 'status.json'), 'utf8')) as { counters: { generations_bumped: number }; last_error: { message: string } };
    expect(report.counters.generations_bumped).toBe(1);
    expect(report.last_error.message).toContain('generation 1');
  });
});

describe('shipper: FIFOs and symlinks in the ledger directory', () => {
  it('never opens or follows them, ships the rest exactly once, names them, and stops on SIGTERM', async () => {
    const d = dirs('hostile-dir');
    const ids = await writeEntries(d.ledger, 400, 8 * 1024);
    const segs = fs.readdirSync(d.ledger).filter((n) => /^ledger-.*\.jsonl$/.test(n)).sort();
    expect(segs.length).toBeGreaterThan(3);
    const fifo = 'ledger-20000101T000000000Z-fifo0000.jsonl';
    const toEtc = 'ledger-20000101T000000001Z-link0000.jsonl';
    const toSibling = 'ledger-20000101T000000002Z-link0001.jsonl';
    execFileSync('mkfifo', [path.join(d.ledger, fifo)]);
    const secret = path.join(d.root, 'passwd');
    fs.writeFileSync(secret, 'root:x:0:0:root:/root:/bin/bash\n');
    fs.symlinkSync(secret, path.join(d.ledger, toEtc));
    fs.symlinkSync(segs[0]!, path.join(d.ledger, toSibling));

    const r = await ship(d);
    // Everything real is shipped; the run names what it would not touch and exits 1.
    expect(r.code, r.stderr).toBe(1);
    for (const name of [fifo, toEtc, toSibling]) expect(r.stderr).toContain(name);
    expect(r.stderr).toContain('a FIFO');
    expect(r.stderr).toContain('a symlink');
    const dest = new LocalDirDestination(d.bucket);
    let objects = await shippedObjects(dest);
    expect(objects.some((o) => [fifo, toEtc, toSibling].includes(o.segment))).toBe(false);
    expect(JSON.stringify(quarantineRecords(objects))).not.toContain(Buffer.from('root:x:0:0').toString('base64').slice(0, 12));
    const shipped = shippedEntries(objects).map((e) => e.id);
    expect([...shipped].sort()).toEqual([...ids].sort());
    expect(checkExactlyOnce(d.ledger, objects.filter((o) => segs.includes(o.segment)), { requireComplete: true, segments: new Map(segs.map((s) => [s, fs.readFileSync(path.join(d.ledger, s))])) })).toEqual([]);
    const st = await status(d.ledger);
    expect(st.skipped.map((s) => s.name).sort()).toEqual([fifo, toEtc, toSibling].sort());

    // The active link pointed out of the directory: not followed by the shipper either.
    const outside = path.join(d.root, 'ledger-20000101T000000003Z-outside0.jsonl');
    fs.writeFileSync(outside, goRecorderLines(5, 'outside').text);
    fs.rmSync(path.join(d.ledger, 'ledger.jsonl'));
    fs.symlinkSync(outside, path.join(d.ledger, 'ledger.jsonl'));

    // The daemon: keeps shipping new entries past them, reports them, and stops on SIGTERM.
    const daemon: ChildProcess = spawnCli(['ship', '--ledger-dir', d.ledger, '--dest', d.bucket, '--node', 'node-a', '--rescan-ms', '100', '--batch-ms', '0', '--seal-quiet-ms', '0']);
    cleanups.push(() => daemon.kill('SIGKILL'));
    const exited = waitExit(daemon);
    const more = goRecorderLines(20, 'late');
    fs.appendFileSync(path.join(d.ledger, segs.at(-1)!), more.text);
    await pollUntil('the new entries to ship', async () => {
      const now = new Set(shippedEntries(await shippedObjects(dest)).map((e) => e.id));
      return more.ids.every((id) => now.has(id));
    }, 60_000, 50);
    const report = await pollUntil('a status report naming the skipped files', () => {
      try {
        const s = JSON.parse(fs.readFileSync(path.join(d.ledger, '.shipper', 'status.json'), 'utf8')) as { skipped?: { name: string }[]; last_error: { message: string } | null };
        return (s.skipped?.length ?? 0) >= 4 ? s : undefined;
      } catch {
        return undefined;
      }
    }, 60_000, 50);
    expect(report.skipped!.map((s) => s.name)).toContain('ledger.jsonl');
    expect(report.last_error).not.toBeNull();
    daemon.kill('SIGTERM');
    const done = await exited;
    expect(done.code, done.stderr.slice(-2000)).toBe(0);
    objects = await shippedObjects(dest);
    expect(objects.some((o) => o.segment === path.basename(outside))).toBe(false);
    expect(fs.readFileSync(secret, 'utf8')).toBe('root:x:0:0:root:/root:/bin/bash\n');
  });
});
