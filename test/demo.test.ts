import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { demoDayStart } from '../examples/demo-plan.js';
import { expectedBill, type Totals } from './support/demo-bill.js';
import { readOutputs } from './support/read-outputs.js';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const DEMO = path.join(REPO, 'examples', 'demo.ts');
const HOUR_MS = 3_600_000;
const GiB = 1024 ** 3;

function runDemo(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', DEMO, ...args], { cwd: REPO, env: { ...process.env, NO_COLOR: '1' }, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

/** The numbers of a usage table line "<label> ... vcpu mem storage". */
function tableLine(out: string, section: string, label: string): [number, number, number] {
  const table = out.slice(out.indexOf(section));
  const line = table.split('\n').find((l) => l.trim().split(/\s+/)[0] === label);
  expect(line, `no "${label}" line after "${section}" in:\n${out}`).toBeDefined();
  const nums = line!.trim().split(/\s+/).slice(-3).map(Number);
  return [nums[0]!, nums[1]!, nums[2]!];
}

/** What the table should print, to its 3 decimals, from the exact expected products. */
function expectedColumns(t: Totals): [number, number, number] {
  return [Number(t.cpuMs) / HOUR_MS, Number(t.memByteMs) / (GiB * HOUR_MS), Number(t.vmStorageByteMs + t.snapStorageByteMs) / (GiB * HOUR_MS)];
}

describe('npm run demo', () => {
  let dir: string;
  let result: { code: number; stdout: string; stderr: string };
  const day = new Date(demoDayStart()).toISOString().slice(0, 10);

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'metering-demo-'));
    // Leftovers of an earlier run: the demo must start clean, not bill them again.
    fs.writeFileSync(path.join(dir, '.metering-demo'), 'earlier run\n');
    fs.mkdirSync(path.join(dir, 'nodes', 'node-a', 'ledger'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'nodes', 'node-a', 'store.json'), JSON.stringify({ version: 1, vms: { 'web-1': { id: 'web-1' } }, snapshots: {} }));
    fs.mkdirSync(path.join(dir, 'bucket', 'ledger', 'node=node-x'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'bucket', 'ledger', 'node=node-x', 'junk.ndjson'), 'not a ledger object\n');
    result = await runDemo(['--dir', dir, '--day', day]);
  }, 120_000);
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('exits 0 and walks through every step', () => {
    expect(result.code, result.stderr + result.stdout).toBe(0);
    for (const title of ['1/5  A day on 3 nodes', '2/5  Ship', '3/5  Roll up', '4/5  Usage', '5/5  Done']) expect(result.stdout).toContain(title);
    expect(result.stdout).toContain(`HTML report: ${path.join(dir, 'usage.html')}`);
    expect(fs.readFileSync(path.join(dir, 'usage.html'), 'utf8')).toMatch(/<html/i);
    expect(fs.existsSync(path.join(dir, 'bucket', 'ledger', 'node=node-x'))).toBe(false);
  });

  it('prints a usage table whose totals match the bill worked out from the script', () => {
    const { total, byNode } = expectedBill();
    const [cpu, mem, storage] = expectedColumns(total);
    // Sanity of the model itself: a day of a dozen VMs, not zero and not absurd.
    expect(cpu).toBeGreaterThan(100);
    expect(cpu).toBeLessThan(24 * 200);
    const printed = tableLine(result.stdout, 'Usage by resource', 'TOTAL');
    expect(printed[0]).toBeCloseTo(cpu, 3);
    expect(printed[1]).toBeCloseTo(mem, 3);
    expect(printed[2]).toBeCloseTo(storage, 3);
    for (const [node, t] of byNode) {
      const [c, m, s] = expectedColumns(t);
      const line = tableLine(result.stdout, 'Usage by node', node);
      expect(line[0]).toBeCloseTo(c, 3);
      expect(line[1]).toBeCloseTo(m, 3);
      expect(line[2]).toBeCloseTo(s, 3);
    }
  });

  it('the rollup found a clean ledger: no orphans, duplicates or gaps, and the delete race recorded one stop', () => {
    const { report, intervals } = readOutputs(path.join(dir, 'rollup'));
    expect(report.orphan_stops!.count).toBe(0);
    expect(report.duplicate_starts!.count).toBe(0);
    expect(report.duplicate_stops!.count).toBe(0);
    expect(report.seq_gaps!.missing).toBe(0);
    expect(result.stdout.match(/removed snapshot ci-golden/g)).toHaveLength(1);
    expect(result.stdout.match(/snapshot ci-golden is already gone; nothing recorded/g)).toHaveLength(1);
    const stops = intervals.filter((iv) => iv.resource_id === 'ci-golden');
    expect(stops).toHaveLength(1);
  });

  it('refuses to wipe a directory it did not create', async () => {
    const foreign = fs.mkdtempSync(path.join(os.tmpdir(), 'not-a-demo-'));
    fs.writeFileSync(path.join(foreign, 'precious.txt'), 'keep me');
    try {
      const r = await runDemo(['--dir', foreign]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/was not made by the demo/);
      expect(fs.readFileSync(path.join(foreign, 'precious.txt'), 'utf8')).toBe('keep me');
    } finally {
      fs.rmSync(foreign, { recursive: true, force: true });
    }
  });
});
