/**
 * Crash storm: N writer processes emit while writers AND the shipper are SIGKILLed at random
 * points, over and over (a killed writer is replaced by a fresh one: new writer id, seq from 1).
 * Then one `ship --once` drains and the consumer runs. Every acknowledged id must be in the objects
 * and in the consumer's input exactly once; the only entries nobody acknowledged are killed
 * writers' last lines; no writer has a seq gap (durability `os`: a write either happened or not).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { LocalDirDestination } from 'metering-ledger/sink';
import { acknowledgedIds, checkPipeline, drainOnce, removeRoot, sampleRss, sleep, startShipperProcess, startWriter, tempRoot, waitForStderr, type FaultResult, type WriterProcess } from './support.js';

export interface CrashStormParams {
  writers: number;
  /** Entries each writer slot must complete in one unkilled run (killed runs come on top). */
  entriesPerWriter: number;
  ratePerWriter: number;
  writerKills: number;
  shipperKills: number;
  maxSegmentBytes?: number;
  /** Scenario name in the results (default "crash storm"). */
  name?: string;
}

export async function run(p: CrashStormParams): Promise<FaultResult> {
  const root = tempRoot('crash');
  const ledger = path.join(root, 'ledger');
  const bucket = path.join(root, 'bucket');
  const acksDir = path.join(root, 'acks');
  const all: WriterProcess[] = [];
  let writerKillsLeft = p.writerKills;
  let killedWriters = 0;
  const violations: string[] = [];

  // Each slot runs writer processes until one finishes unkilled.
  const slot = async (): Promise<void> => {
    for (;;) {
      const w = startWriter(acksDir, { ledger, count: p.entriesPerWriter, rate: p.ratePerWriter, maxSegmentBytes: p.maxSegmentBytes ?? 64 * 1024 });
      all.push(w);
      const r = await w.done;
      if (r.signal === 'SIGKILL' && w.killed) continue;
      if (r.code !== 0) violations.push(`writer exited ${r.code}/${r.signal}: ${r.stderr.slice(0, 300)}`);
      return;
    }
  };
  const slots = Promise.all(Array.from({ length: p.writers }, slot));
  let slotsDone = false;
  void slots.then(() => (slotsDone = true));

  // Writer killer: random live writer, random moment.
  const writerKiller = (async () => {
    while (writerKillsLeft > 0 && !slotsDone) {
      await sleep(200 + Math.random() * 600);
      // Only writers already writing: a kill during start-up would test nothing.
      const live = all.filter((w) => w.child.exitCode === null && w.child.signalCode === null && !w.killed && fs.existsSync(w.acks) && fs.statSync(w.acks).size > 0);
      const victim = live[Math.floor(Math.random() * live.length)];
      if (!victim) continue;
      victim.killed = true;
      victim.child.kill('SIGKILL');
      writerKillsLeft--;
      killedWriters++;
    }
  })();

  // Shipper killer: start, kill during start-up or while shipping, restart.
  let maxRss = 0;
  let shipperKills = 0;
  for (let i = 0; i < p.shipperKills; i++) {
    const s = startShipperProcess(ledger, bucket);
    const rss = sampleRss(s.child.pid!);
    if (i % 2 === 0) await sleep(150 + Math.random() * 1200);
    else {
      await waitForStderr(s.child, 'shipper: started');
      await sleep(Math.random() * 800);
    }
    s.child.kill('SIGKILL');
    const r = await s.done;
    maxRss = Math.max(maxRss, rss.stop());
    if (r.signal !== 'SIGKILL') violations.push(`shipper exited by itself (code ${r.code}): ${r.stderr.slice(-500)}`);
    else shipperKills++;
  }
  await writerKiller;
  await slots;

  const final = await drainOnce(ledger, bucket);
  if (final.code !== 0) violations.push(`final ship --once exited ${final.code}: ${final.stderr.slice(-500)}`);
  const acked = acknowledgedIds(all);
  const check = await checkPipeline({ ledger, destination: new LocalDirDestination(bucket), source: bucket, out: path.join(root, 'out'), acked, killedWriters });
  removeRoot(root);
  const objects = check.objects.length;
  if (objects < 3) violations.push(`only ${objects} objects: the killed shippers did no real work`);
  return {
    scenario: p.name ?? 'crash storm',
    runs: shipperKills + killedWriters,
    entries: check.entries,
    lost: check.lost,
    duplicated: check.duplicated,
    maxRssMb: maxRss,
    notes: [`${p.writers} writer slots, ${killedWriters} writer kills, ${shipperKills} shipper kills, ${objects} objects`, ...check.notes],
    violations: [...violations, ...check.violations],
  };
}
