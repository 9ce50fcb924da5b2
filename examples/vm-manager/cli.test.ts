import { execFile, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Command } from 'commander';
import { KINDS, listSegments, readLedger, type LedgerEntry } from 'metering-ledger';
import { buildProgram } from './program.js';

const CLI = fileURLToPath(new URL('./cli.ts', import.meta.url));
const REPO = fileURLToPath(new URL('../..', import.meta.url));

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vm-cli-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const argv = (args: string[]): string[] => ['--import', 'tsx', CLI, '--store', path.join(dir, 'store.json'), '--ledger-dir', path.join(dir, 'ledger'), '--node', 'cli-node', '--vmm', 'simulated', ...args];

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, argv(args), { cwd: REPO }, (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }));
  });
}

async function ledger(): Promise<LedgerEntry[]> {
  const out: LedgerEntry[] = [];
  const d = path.join(dir, 'ledger');
  if (!fs.existsSync(d)) return out;
  for (const seg of listSegments(d)) for await (const r of readLedger(path.join(d, seg))) if (r.type === 'entry') out.push(r.entry);
  return out;
}

describe('vm-manager CLI', () => {
  it('stamps --at on records and entries; bad input gets a clear error and changes nothing', async () => {
    expect((await cli(['create', 'vm-a', '--cpu', '4', '--mem', '8GiB', '--disk', '40GiB', '--start', '--at', '2026-11-23T09:00:00Z'])).code).toBe(0);
    const entries = await ledger();
    expect(entries.map((e) => [e.kind, e.reason, e.emitted_at, e.node])).toEqual([
      [KINDS.VM_STORAGE_START, 'boot', '2026-11-23T09:00:00.000Z', 'cli-node'],
      [KINDS.VM_COMPUTE_START, 'boot', '2026-11-23T09:00:00.000Z', 'cli-node'],
    ]);
    expect(entries[0]!.shape).toEqual({ cpu: 4, mem_bytes: 8 * 1024 ** 3, storage_bytes: 40 * 1024 ** 3 });
    const store = fs.readFileSync(path.join(dir, 'store.json'), 'utf8');

    const bad = await Promise.all([
      cli(['start', 'vm-nope']),
      cli(['create', 'vm-b', '--mem', 'lots']),
      cli(['stop', 'vm-a', '--at', 'yesterday']),
      cli(['create', 'vm-a']),
      cli(['create', '../etc']),
    ]);
    expect(bad.map((r) => r.code)).toEqual([1, 1, 1, 1, 1]);
    expect(bad[0]!.stderr).toMatch(/no VM "vm-nope"/);
    expect(bad[1]!.stderr).toMatch(/expected a size such as 4GiB/);
    expect(bad[2]!.stderr).toMatch(/RFC 3339/);
    expect(bad[3]!.stderr).toMatch(/vm-a already exists/);
    expect(bad[4]!.stderr).toMatch(/must be 1-64 letters/);
    expect(fs.readFileSync(path.join(dir, 'store.json'), 'utf8')).toBe(store);
    expect(await ledger()).toHaveLength(2);
  });

  it('every command and flag has help text', async () => {
    const seen: string[] = [];
    const walk = (cmd: Command, name: string): void => {
      expect(cmd.description(), name).not.toBe('');
      for (const o of cmd.options) expect(o.description, `${name} ${o.flags}`).not.toBe('');
      seen.push(name);
      for (const sub of cmd.commands) walk(sub, `${name} ${sub.name()}`.trim());
    };
    walk(buildProgram(), '');
    expect(seen.sort()).toEqual(['', 'clone', 'crash', 'create', 'hang', 'list', 'reconcile', 'restore', 'rm', 'snapshot', 'snapshot create', 'snapshot rm', 'start', 'stop']);
    const r = await cli(['snapshot', 'rm', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Usage: vm-manager snapshot rm \[options\] <id>/);
  });

  it('reconcile --every emits baselines round after round and stops cleanly on SIGTERM', async () => {
    expect((await cli(['create', 'vm-a', '--start'])).code).toBe(0);
    const child = spawn(process.execPath, argv(['reconcile', '--every', '1s']), { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const baselines = async (): Promise<number> => (await ledger()).filter((e) => e.kind === KINDS.VM_COMPUTE_RUNNING).length;
    // Wait for two rounds, however long the machine takes.
    while ((await baselines()) < 2) await sleep(100);
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(stdout.match(/reconciled: 2 baselines/g)!.length).toBeGreaterThanOrEqual(2);
    expect(await cli(['reconcile', '--every', '1s', '--at', '2026-11-23T00:00:00Z'])).toMatchObject({ code: 1, stderr: expect.stringMatching(/cannot be combined with --at/) });
  });
});
