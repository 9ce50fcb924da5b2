import type { ChildProcess } from 'node:child_process';
import { spawnCli, spawnTs, waitExit } from './spawn.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function waitForOutput(child: ChildProcess, text: string, timeoutMs: number): Promise<void> {
  return new Promise((resolve) => {
    let seen = '';
    const done = (): void => {
      clearTimeout(timer);
      child.stderr?.off('data', onData);
      resolve();
    };
    const onData = (d: Buffer): void => {
      seen += d.toString();
      if (seen.includes(text)) done();
    };
    const timer = setTimeout(done, timeoutMs);
    child.stderr?.on('data', onData);
  });
}

/** A writer-and-killed-shipper scenario, shared by the local-dir and GCS crash tests. */
export interface CrashRunOptions {
  ledger: string;
  dest: string;
  extraArgs?: string[];
  writers: number;
  entriesPerWriter: number;
  ratePerWriter: number;
  kills: number;
  env?: NodeJS.ProcessEnv;
  /** The first writer also appends a malformed line every N entries (quarantine + ledger pairs). */
  garbageEvery?: number;
  /** Run test/support/slow-ack-shipper.ts (dest = a bucket directory) instead of the CLI. */
  slowAck?: boolean;
}

/** Runs writers and a repeatedly killed shipper; resolves with every id the writers reported writing. */
export async function runCrashScenario(o: CrashRunOptions): Promise<{ ids: string[]; killedAt: number[] }> {
  const writers = Array.from({ length: o.writers }, (_, i) =>
    waitExit(
      spawnTs('test/support/ledger-writer.ts', [o.ledger, String(o.entriesPerWriter), String(o.ratePerWriter), '100000', 'node-a'], {
        env: { ...process.env, PRINT_IDS: '1', ...(i === 0 && o.garbageEvery ? { GARBAGE_EVERY: String(o.garbageEvery) } : {}) },
      }),
    ),
  );
  let writersDone = false;
  const all = Promise.all(writers).then((r) => {
    writersDone = true;
    return r;
  });
  const args = ['ship', '--ledger-dir', o.ledger, '--dest', o.dest, '--node', 'node-a', '--batch-bytes', '16KiB', '--batch-ms', '30', '--rescan-ms', '100', '--progress-ms', '300', '--seal-quiet-ms', '300', '--retry-base-ms', '20', '--retry-cap-ms', '200', ...(o.extraArgs ?? [])];
  const killedAt: number[] = [];
  for (let i = 0; i < o.kills; i++) {
    const env = { ...process.env, METERING_LOG_LEVEL: 'info', ...o.env };
    const child: ChildProcess = o.slowAck ? spawnTs('test/support/slow-ack-shipper.ts', [o.ledger, o.dest], { env }) : spawnCli(args, { env });
    const exited = waitExit(child);
    const t0 = Date.now();
    if (i % 2 === 0) {
      // Anywhere from start-up (lock take-over, reconciliation) into the first passes.
      await sleep(150 + Math.floor(Math.random() * 1500));
    } else {
      // Surely while shipping, however slow start-up is on a loaded machine.
      await waitForOutput(child, 'shipper: started', 15_000);
      await sleep(Math.floor(Math.random() * 800));
    }
    killedAt.push(Date.now() - t0);
    child.kill('SIGKILL');
    const r = await exited;
    // Killed, or (rarely) it had already failed: a failure is a bug worth seeing.
    if (r.signal !== 'SIGKILL') throw new Error(`shipper exited by itself (code ${r.code}): ${r.stderr}`);
  }
  const results = await all;
  if (!writersDone) throw new Error('writers did not finish');
  const ids: string[] = [];
  for (const r of results) {
    if (r.code !== 0) throw new Error(`writer failed (${r.code}): ${r.stderr}`);
    ids.push(...r.stdout.split('\n').filter(Boolean));
  }
  return { ids, killedAt };
}

