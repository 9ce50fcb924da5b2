/**
 * Destination faults through the GCS test server and the real @google-cloud/storage client: the
 * shipper runs as a process (`metering ship --dest gs://...`) while writers emit, and the server
 * plays a long outage (refused connections), flapping, slow answers, connections reset in the
 * middle of an upload body or after the object was stored, and 429 storms. Afterwards: every
 * acknowledged id is in the bucket and in the consumer's input exactly once, the object ranges tile
 * every segment, each ledger object was stored exactly once (never overwritten by a retry), and the
 * shipper's RSS stayed bounded.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ShipperStatus } from 'metering-ledger/sink';
import { GcsDestination } from 'metering-ledger/sink/gcs';
import { startGcsServer, type FaultHandle, type GcsTestServer } from '../support/gcs-server.js';
import { acknowledgedIds, checkPipeline, removeRoot, sampleRss, sleep, startShipperProcess, startWriter, tempRoot, until, type FaultResult, type WriterProcess } from './support.js';

export type DestinationFault = 'outage' | 'flapping' | 'slow' | 'resets' | '429-storm';
export const ALL_FAULTS: DestinationFault[] = ['outage', 'flapping', 'slow', 'resets', '429-storm'];

export interface DestinationFaultParams {
  /** Played one after the other, each for `faultMs`, in one shipper run. */
  faults: DestinationFault[];
  faultMs: number;
  /** Fault windows per fault kind. */
  rounds: number;
  writers: number;
  entriesPerWriter: number;
  ratePerWriter: number;
  /** RSS above this is a violation (MiB). */
  maxRssMb: number;
}

/** Plays one fault window; returns how many faults the server applied. */
async function play(server: GcsTestServer, fault: DestinationFault, ms: number): Promise<void> {
  const end = Date.now() + ms;
  const handles: FaultHandle[] = [];
  try {
    switch (fault) {
      case 'outage':
        await server.refuseConnections();
        await sleep(ms);
        break;
      case 'flapping':
        while (Date.now() < end) {
          await server.refuseConnections();
          await sleep(100 + Math.random() * 250);
          await server.acceptConnections();
          await sleep(100 + Math.random() * 250);
        }
        break;
      case 'slow':
        // Every request answered late, some later than others.
        handles.push(server.injectFault({ times: Infinity, action: { type: 'delay', ms: 400 } }));
        await sleep(ms);
        break;
      case 'resets':
        while (Date.now() < end) {
          // Reset after part of the body (nothing stored), or after storing (the answer is lost).
          handles.push(server.dropNext(2, { op: 'upload' }, Math.floor(Math.random() * 2000)));
          handles.push(server.dropResponseNext(2, { op: 'upload' }));
          await sleep(150);
        }
        break;
      case '429-storm':
        handles.push(server.injectFault({ times: Infinity, action: { type: 'status', status: 429, message: 'The rate of change requests to the object is too high' } }));
        await sleep(ms);
        break;
    }
  } finally {
    for (const h of handles) h.remove();
    await server.acceptConnections();
  }
}

export async function run(p: DestinationFaultParams): Promise<FaultResult> {
  const scenario = `destination: ${p.faults.join(' + ')}`;
  const root = tempRoot('dest');
  const ledger = path.join(root, 'ledger');
  fs.mkdirSync(ledger);
  const prefix = 'faults/eu';
  const server = await startGcsServer({ buckets: ['ledgers'], requestLogLimit: 10_000_000 });
  const violations: string[] = [];
  const shipper = startShipperProcess(ledger, `gs://ledgers/${prefix}`, ['--endpoint', server.url, '--retry-cap-ms', '500']);
  const rss = sampleRss(shipper.child.pid!);
  const writers: WriterProcess[] = Array.from({ length: p.writers }, () => startWriter(path.join(root, 'acks'), { ledger, count: p.entriesPerWriter, rate: p.ratePerWriter }));
  const statusOf = (): ShipperStatus | undefined => {
    try {
      return JSON.parse(fs.readFileSync(path.join(ledger, '.shipper', 'status.json'), 'utf8')) as ShipperStatus;
    } catch {
      return undefined;
    }
  };
  // Generation of every ledger/quarantine object, sampled: a change means a retry overwrote it.
  const generations = new Map<string, string>();
  const overwritten = new Set<string>();
  const watchGenerations = (): void => {
    for (const o of server.listObjects('ledgers', `${prefix}/`)) {
      if (!/\/(ledger|quarantine)\//.test(o.name)) continue;
      const seen = generations.get(o.name);
      if (seen !== undefined && seen !== o.generation) overwritten.add(o.name);
      generations.set(o.name, o.generation);
    }
  };
  const watcher = setInterval(watchGenerations, 50);
  try {
    await until('writers to start writing', () => writers.every((w) => fs.existsSync(w.acks) && fs.statSync(w.acks).size > 0), 30_000);
    let windows = 0;
    for (let round = 0; round < p.rounds; round++) {
      for (const fault of p.faults) {
        await play(server, fault, p.faultMs);
        windows++;
        await sleep(200);
      }
    }
    const results = await Promise.all(writers.map((w) => w.done));
    for (const r of results) if (r.code !== 0) violations.push(`writer exited ${r.code}: ${r.stderr.slice(0, 300)}`);
    const acked = acknowledgedIds(writers);
    await until('the backlog to drain', () => {
      const s = statusOf();
      return s && s.backlog_bytes === 0 && s.counters.ledger_lines === acked.length;
    }, 120_000);
    const errors = statusOf()?.counters.upload_errors ?? 0;
    if (shipper.child.exitCode !== null) violations.push('the shipper exited during the faults');
    shipper.child.kill('SIGTERM');
    const stopped = await shipper.done;
    const maxRssMb = rss.stop();
    if (stopped.code !== 0) violations.push(`shipper did not stop cleanly (exit ${stopped.code}): ${stopped.stderr.slice(-500)}`);
    // Refused connections are not server faults; slow answers are not errors: either proves contact.
    if (errors === 0 && server.stats.faultsApplied === 0) violations.push('no fault reached the shipper (no error, no fault applied)');
    if (maxRssMb > p.maxRssMb) violations.push(`shipper RSS peaked at ${maxRssMb} MiB (bound ${p.maxRssMb} MiB)`);

    // Each ledger/quarantine object was stored once: its generation never changed while watched.
    clearInterval(watcher);
    watchGenerations();
    const storedTwice = [...overwritten];
    if (storedTwice.length) violations.push(`${storedTwice.length} objects were overwritten by a later upload, e.g. ${storedTwice[0]}`);
    const retriedExisting = server.requestLog.filter((r) => r.op.startsWith('upload') && r.status === 412).length;

    const check = await checkPipeline({
      ledger,
      destination: new GcsDestination('ledgers', { endpoint: server.url }),
      prefix,
      source: `gs://ledgers/${prefix}`,
      consumerFlags: ['--endpoint', server.url],
      out: path.join(root, 'out'),
      acked,
      killedWriters: 0,
    });
    return {
      scenario,
      runs: windows,
      entries: check.entries,
      lost: check.lost,
      duplicated: check.duplicated + storedTwice.length,
      maxRssMb,
      notes: [`${windows} fault windows of ${p.faultMs} ms, ${server.stats.faultsApplied} faults applied, ${errors} upload errors retried, ${retriedExisting} retried uploads answered 412 (already stored), ${check.objects.length} objects never overwritten`, ...check.notes],
      violations: [...violations, ...check.violations],
    };
  } finally {
    clearInterval(watcher);
    for (const c of [shipper.child, ...writers.map((w) => w.child)]) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await Promise.allSettled([shipper.done, ...writers.map((w) => w.done)]);
    await server.stop();
    removeRoot(root);
  }
}
