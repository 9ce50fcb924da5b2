/**
 * `metering rollup` removes the temp files a run killed mid-write (kill -9) left beside its outputs:
 * report.json's in --out, and a partition's in its dt= directory (outputs/partitions.ts writes each
 * partition through a temp file beside it).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FileRecorder } from 'metering-ledger';
import { vmStart } from './support/entries.js';
import { partitionFiles } from './support/read-outputs.js';
import { spawnCli, waitExit } from './support/spawn.js';
import { tempDir } from './support/tmp.js';

const cleanups: (() => void)[] = [];
afterEach(() => cleanups.splice(0).forEach((c) => c()));

/** A bucket with one shipped entry, rolled up once by the CLI into `out`. */
async function rolledOnce(): Promise<{ bucket: string; out: string }> {
  const t = tempDir('consumer-tmp');
  cleanups.push(t.cleanup);
  const [ledger, bucket, out] = ['ledger', 'bucket', 'out'].map((n) => path.join(t.dir, n)) as [string, string, string];
  const rec = new FileRecorder({ dir: ledger, node: 'node-a' });
  rec.emit(vmStart('vm-1'));
  await rec.close();
  expect((await waitExit(spawnCli(['ship', '--once', '--ledger-dir', ledger, '--dest', bucket, '--node', 'node-a']))).code).toBe(0);
  const r = await waitExit(spawnCli(['rollup', '--source', bucket, '--out', out]));
  expect(r.code, r.stderr).toBe(0);
  return { bucket, out };
}

/** The pid of a process that has exited. */
const deadPid = (): number => Number(spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString());

describe('consumer temp files', () => {
  it('temp files of a dead run are removed on the next run; a live process keeps its own', async () => {
    const { bucket, out } = await rolledOnce();
    const dead = deadPid();
    const litter = [`.report.json.${dead}.00aa11bb.tmp`, `.intervals.ndjson.${dead}.22cc33dd.tmp`].map((n) => path.join(out, n));
    for (const f of litter) fs.writeFileSync(f, 'half a file');
    const live = path.join(out, `.report.json.${process.pid}.44ee55ff.tmp`);
    fs.writeFileSync(live, 'being written');
    const r = await waitExit(spawnCli(['rollup', '--source', bucket, '--out', out]));
    expect(r.code, r.stderr).toBe(0);
    for (const f of litter) expect(fs.existsSync(f), f).toBe(false);
    expect(fs.existsSync(live)).toBe(true);
  });

  it("a dead run's temp file inside a partition directory is removed on the next run", async () => {
    const { bucket, out } = await rolledOnce();
    const [part] = partitionFiles(out, 'intervals');
    expect(part).toBeDefined();
    const litter = path.join(path.dirname(part!), `.intervals.ndjson.${deadPid()}.22cc33dd.tmp`);
    fs.writeFileSync(litter, 'half a partition');
    const r = await waitExit(spawnCli(['rollup', '--source', bucket, '--out', out]));
    expect(r.code, r.stderr).toBe(0);
    expect(fs.existsSync(litter), litter).toBe(false);
  });
});
