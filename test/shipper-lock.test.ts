/**
 * Exactly one shipper per ledger directory, also right after the holder was SIGKILLed: two
 * contenders start at the same moment, 50 times, and each time exactly one gets the lock. Then the
 * same with two real `metering ship` daemons, and `metering status` naming the holder.
 */
import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { spawnCli, spawnTs, waitExit } from './support/spawn.js';
import { tempDir } from './support/tmp.js';
import { pollUntil } from './support/until.js';

const cleanups: (() => void)[] = [];
afterEach(() => cleanups.splice(0).forEach((c) => c()));

interface Contender {
  child: ChildProcess;
  lines: string[];
  exited: Promise<unknown>;
}

function contender(dir: string): Contender {
  const child = spawnTs('test/support/lock-contender.ts', [dir], { stdio: ['pipe', 'pipe', 'pipe'] });
  const lines: string[] = [];
  let buf = '';
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    const parts = buf.split('\n');
    buf = parts.pop()!;
    lines.push(...parts);
  });
  const exited = waitExit(child);
  cleanups.push(() => child.kill('SIGKILL'));
  return { child, lines, exited };
}

const answer = (c: Contender): string | undefined => c.lines.find((l) => l !== 'ready');

describe('one shipper per ledger directory', () => {
  it('50 races of two starts right after a SIGKILL of the holder: always exactly one wins', { timeout: 300_000 }, async () => {
    const t = tempDir('shipper-lock-race');
    cleanups.push(t.cleanup);
    const dir = path.join(t.dir, 'ledger');
    fs.mkdirSync(dir);
    const pool: Contender[] = [contender(dir), contender(dir), contender(dir)];
    await pollUntil('contenders ready', () => pool.every((c) => c.lines.includes('ready')), 60_000, 20);
    let holder = pool.shift()!;
    holder.child.stdin!.write('go\n');
    await pollUntil('the first holder', () => answer(holder), 30_000, 10);
    expect(answer(holder)).toBe('got');
    const outcomes: string[] = [];
    const doubles: string[] = [];
    const misnamed: string[] = [];
    for (let round = 0; round < 50; round++) {
      const [a, b] = [pool[0]!, pool[1]!];
      await pollUntil('two ready contenders', () => a.lines.includes('ready') && b.lines.includes('ready'), 60_000, 10);
      a.lines.splice(0, a.lines.length, 'ready');
      b.lines.splice(0, b.lines.length, 'ready');
      holder.child.kill('SIGKILL');
      await holder.exited;
      a.child.stdin!.write('go\n');
      b.child.stdin!.write('go\n');
      await pollUntil('both answers', () => answer(a) && answer(b), 60_000, 5);
      const got = [a, b].filter((c) => answer(c) === 'got');
      outcomes.push(`${answer(a)}|${answer(b)}`);
      if (got.length === 1) {
        const loser = got[0] === a ? b : a;
        if (answer(loser) !== `locked ${got[0]!.child.pid}`) misnamed.push(`round ${round}: ${outcomes.at(-1)}, holder ${got[0]!.child.pid}`);
      } else {
        doubles.push(`round ${round}: ${outcomes.at(-1)}`);
      }
      // The winner (or, after a double win, both) leave the pool; fresh contenders replace them.
      holder = got[0] ?? a;
      for (const c of got.length === 2 ? [a, b] : [holder]) {
        if (c !== holder) c.child.kill('SIGKILL');
        pool.splice(pool.indexOf(c), 1);
        pool.push(contender(dir));
      }
    }
    expect(doubles, 'rounds where both or neither took the lock').toEqual([]);
    expect(misnamed, 'the refused contender names the holder').toEqual([]);
    expect(outcomes).toHaveLength(50);
  });

  it('two `metering ship` daemons started together after a SIGKILL: one runs, the other exits 3 naming it', { timeout: 120_000 }, async () => {
    const t = tempDir('shipper-lock-cli');
    cleanups.push(t.cleanup);
    const ledger = path.join(t.dir, 'ledger');
    fs.mkdirSync(ledger);
    const args = ['ship', '--ledger-dir', ledger, '--dest', path.join(t.dir, 'bucket'), '--node', 'node-a'];
    const start = (): { child: ChildProcess; out: { stderr: string }; exited: ReturnType<typeof waitExit> } => {
      const child = spawnCli(args);
      const out = { stderr: '' };
      child.stderr!.on('data', (d: Buffer) => (out.stderr += d.toString()));
      cleanups.push(() => child.kill('SIGKILL'));
      return { child, out, exited: waitExit(child) };
    };
    let holder = start();
    await pollUntil('the first shipper to start', () => holder.out.stderr.includes('shipper: started'), 60_000, 20);
    for (let round = 0; round < 3; round++) {
      holder.child.kill('SIGKILL');
      await holder.exited;
      const a = start();
      const b = start();
      const loser = await Promise.race([a.exited.then(() => a), b.exited.then(() => b)]);
      const winner = loser === a ? b : a;
      const r = await loser.exited;
      expect(r.code, r.stderr).toBe(3);
      expect(r.stderr).toContain(`(pid ${winner.child.pid})`);
      await pollUntil('the winner to start', () => winner.out.stderr.includes('shipper: started'), 60_000, 20);
      const status = await waitExit(spawnCli(['status', '--ledger-dir', ledger, '--json']));
      expect(JSON.parse(status.stdout)).toMatchObject({ running: true, pid: winner.child.pid });
      holder = winner;
    }
    holder.child.kill('SIGTERM');
    expect((await holder.exited).code).toBe(0);
    const status = await waitExit(spawnCli(['status', '--ledger-dir', ledger, '--json']));
    expect(JSON.parse(status.stdout)).toMatchObject({ running: false });
  });
});
