/**
 * Shared machinery of the fault scenarios: the result shape, writer processes that log what they
 * acknowledged, shipper processes, RSS sampling, and THE end-to-end check (ledger -> objects ->
 * consumer) that counts what was lost and what was counted twice.
 */
import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readLedger, listSegments, type LedgerEntry } from 'metering-ledger';
import type { Destination, RollupReport } from 'metering-ledger/sink';
import { checkExactlyOnce, shippedEntries, shippedObjects, type ShippedObject } from '../support/shipped.js';
import { spawnCli, spawnTs, waitExit, type Exited } from '../support/spawn.js';
import { pollUntil, type Probe, sleep } from '../support/until.js';

/** What every scenario returns; `violations` lists every claim that did not hold (empty when all is well). */
export interface FaultResult {
  scenario: string;
  /** Repetitions of the fault (kills, fills, fault windows, fuzz cases...). */
  runs: number;
  /** Entries that went through the scenario (acknowledged by writers, or fuzzed lines). */
  entries: number;
  /** Acknowledged entries missing at the end (in the objects or in the consumer's input). */
  lost: number;
  /** Entries present more than once (in the objects, or counted twice by the consumer). */
  duplicated: number;
  /** Peak RSS of the process under test, MiB (0 when not measured). */
  maxRssMb: number;
  notes: string[];
  violations: string[];
}

export { sleep };

export const until = <T>(what: string, fn: Probe<T>, timeoutMs = 60_000): Promise<T> => pollUntil(what, fn, timeoutMs, 50);

export function tempRoot(label: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `faults-${label}-`));
}

export function rssBytes(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0; // exited
  }
}

/** Samples a process's RSS every `everyMs` until stopped; returns the peak in MiB. */
export function sampleRss(pid: number, everyMs = 100): { stop: () => number } {
  let peak = rssBytes(pid);
  const timer = setInterval(() => (peak = Math.max(peak, rssBytes(pid))), everyMs);
  return {
    stop: () => {
      clearInterval(timer);
      return Math.round((peak / 1024 / 1024) * 10) / 10;
    },
  };
}

export const WRITER_FIXTURE = 'test/fixtures/ledger-writer.ts';

/** One writer process (test/fixtures/ledger-writer.ts): appends each acknowledged id to its own acks file. */
export interface WriterProcess {
  child: ChildProcess;
  acks: string;
  done: Promise<Exited>;
  killed: boolean;
}

export interface WriterOptions {
  ledger: string;
  node?: string;
  count: number;
  /** Entries per second; 0 = as fast as possible (yielding every `pauseEvery`). */
  rate?: number;
  maxSegmentBytes?: number;
  pauseEvery?: number;
  env?: NodeJS.ProcessEnv;
}

let writerSerial = 0;

export function startWriter(ackDir: string, o: WriterOptions): WriterProcess {
  fs.mkdirSync(ackDir, { recursive: true });
  const acks = path.join(ackDir, `acks-${process.pid}-${++writerSerial}`);
  const args = ['--dir', o.ledger, '--node', o.node ?? 'node-a', '--count', String(o.count), '--acks', acks, '--pause-every', String(o.pauseEvery ?? 20)];
  if (o.rate) args.push('--rate', String(o.rate));
  if (o.maxSegmentBytes) args.push('--max-segment-bytes', String(o.maxSegmentBytes));
  const child = spawnTs(WRITER_FIXTURE, args, { env: { ...process.env, ...o.env } });
  return { child, acks, done: waitExit(child), killed: false };
}

/** Ids a set of writers acknowledged (emit returned an id), from their acks files. */
export function acknowledgedIds(writers: WriterProcess[]): string[] {
  return writers.flatMap((w) => (fs.existsSync(w.acks) ? fs.readFileSync(w.acks, 'utf8').split('\n').filter(Boolean) : []));
}

/** Recorder stats a writer printed on a clean exit. */
export function writerStats(r: Exited): { writer: string; stats: { written: number; droppedWrite: number; droppedInvalid: number; rotations: number } } | undefined {
  const line = r.stdout.split('\n').filter(Boolean).at(-1);
  try {
    return line ? (JSON.parse(line) as ReturnType<typeof writerStats>) : undefined;
  } catch {
    return undefined;
  }
}

/** The shipper CLI with short timings, so faults and kills meet it in every phase within seconds. */
export function shipArgs(ledger: string, dest: string, extra: string[] = []): string[] {
  return [
    'ship', '--ledger-dir', ledger, '--dest', dest, '--node', 'node-a',
    '--batch-bytes', '16KiB', '--batch-ms', '30', '--rescan-ms', '100', '--progress-ms', '300', '--seal-quiet-ms', '300',
    '--retry-base-ms', '20', '--retry-cap-ms', '300', '--permanent-retry-ms', '300',
    ...extra,
  ];
}

export function startShipperProcess(ledger: string, dest: string, extra: string[] = [], env: NodeJS.ProcessEnv = {}): { child: ChildProcess; done: Promise<Exited> } {
  const child = spawnCli(shipArgs(ledger, dest, extra), { env: { ...process.env, METERING_LOG_LEVEL: 'info', ...env } });
  return { child, done: waitExit(child) };
}

/** Resolves once the child printed `text` on stderr (or after `timeoutMs`, whichever first). */
export function waitForStderr(child: ChildProcess, text: string, timeoutMs = 20_000): Promise<boolean> {
  return new Promise((resolve) => {
    let seen = '';
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      child.stderr?.off('data', onData);
      resolve(ok);
    };
    const onData = (d: Buffer): void => {
      seen += d.toString();
      if (seen.includes(text)) done(true);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    child.stderr?.on('data', onData);
  });
}

/**
 * `metering ship --once`: drains whatever is left. It retries a failing destination forever, so a
 * drain that cannot finish is killed after `timeoutMs` (its exit then says SIGKILL).
 */
export async function drainOnce(ledger: string, dest: string, extra: string[] = [], timeoutMs = 180_000): Promise<Exited> {
  const child = spawnCli(['ship', '--once', '--ledger-dir', ledger, '--dest', dest, '--node', 'node-a', '--seal-quiet-ms', '0', ...extra], { env: { ...process.env, METERING_LOG_LEVEL: 'warn' } });
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  try {
    return await waitExit(child);
  } finally {
    clearTimeout(timer);
  }
}

/** `metering rollup` as a process; returns its exit and the report it wrote (if any). */
export async function runConsumer(source: string, out: string, extra: string[] = []): Promise<{ exit: Exited; report?: RollupReport }> {
  const exit = await waitExit(spawnCli(['rollup', '--source', source, '--out', out, ...extra], { env: { ...process.env, METERING_LOG_LEVEL: 'warn' } }));
  const file = path.join(out, 'report.json');
  const report = exit.code === 0 && fs.existsSync(file) ? (JSON.parse(fs.readFileSync(file, 'utf8')) as RollupReport) : undefined;
  return { exit, report };
}

export async function ledgerRecords(dir: string): Promise<{ entries: LedgerEntry[]; invalid: { segment: string; offset: number; reason: string }[] }> {
  const entries: LedgerEntry[] = [];
  const invalid: { segment: string; offset: number; reason: string }[] = [];
  for (const segment of listSegments(dir)) {
    for await (const r of readLedger(path.join(dir, segment), { includeTail: true })) {
      if (r.type === 'entry') entries.push(r.entry);
      else invalid.push({ segment, offset: r.offset, reason: r.reason });
    }
  }
  return { entries, invalid };
}

export interface PipelineCheck {
  entries: number;
  lost: number;
  duplicated: number;
  violations: string[];
  notes: string[];
  objects: ShippedObject[];
  report?: RollupReport;
  /** Seq numbers missing per writer in what was shipped (writer id -> count). */
  seqGaps: Map<string, number>;
}

export interface PipelineCheckOptions {
  ledger: string;
  destination: Destination;
  prefix?: string;
  /** The consumer's --source (a bucket directory or gs:// URL) and extra flags (--endpoint). */
  source: string;
  consumerFlags?: string[];
  out: string;
  acked: string[];
  /** Writers that were SIGKILLed: only they may leave entries that were written but not acknowledged. */
  killedWriters: number;
  /** Seq gaps explained by counted write failures (disk full); default 0. */
  expectedSeqGaps?: number;
  /** Malformed lines the ledger may hold (torn writes): they must be in quarantine, not lost. */
  allowInvalidLedgerLines?: number;
}

/**
 * The whole-pipeline verdict after a scenario: (1) the objects tile every segment exactly and hold
 * its bytes (no gap, no overlap, no half object); (2) every acknowledged id is in the objects
 * exactly once; (3) entries nobody acknowledged are only killed writers' last lines; (4) per writer,
 * seqs have no gap except counted drops; (5) the consumer, run as a process, reads each entry once.
 */
export async function checkPipeline(o: PipelineCheckOptions): Promise<PipelineCheck> {
  const violations: string[] = [];
  const notes: string[] = [];
  const objects = await shippedObjects(o.destination, o.prefix ?? '');
  for (const p of checkExactlyOnce(o.ledger, objects, { requireComplete: true })) violations.push(`objects vs ledger: ${p}`);

  let shipped: LedgerEntry[] = [];
  try {
    shipped = shippedEntries(objects);
  } catch (err) {
    violations.push(`a ledger object does not parse: ${(err as Error).message}`);
  }
  const counts = new Map<string, number>();
  for (const e of shipped) counts.set(e.id, (counts.get(e.id) ?? 0) + 1);
  let duplicated = 0;
  for (const n of counts.values()) if (n > 1) duplicated += n - 1;
  const ackedSet = new Set(o.acked);
  let lost = 0;
  for (const id of ackedSet) if (!counts.has(id)) lost++;
  if (ackedSet.size !== o.acked.length) violations.push(`writers acknowledged ${o.acked.length - ackedSet.size} ids twice`);

  // Entries in the bucket that nobody acknowledged: a writer killed between write() and its ack.
  const lastSeq = new Map<string, number>();
  for (const e of shipped) lastSeq.set(e.writer, Math.max(lastSeq.get(e.writer) ?? 0, e.seq));
  const unacked = shipped.filter((e) => !ackedSet.has(e.id));
  for (const e of unacked) if (e.seq !== lastSeq.get(e.writer)) violations.push(`entry ${e.id} (writer ${e.writer} seq ${e.seq}) was never acknowledged and is not its writer's last`);
  if (unacked.length > o.killedWriters) violations.push(`${unacked.length} unacknowledged entries but only ${o.killedWriters} writers were killed`);
  if (unacked.length) notes.push(`${unacked.length} entries written by killed writers just before their ack`);

  const seqs = new Map<string, number[]>();
  for (const e of shipped) seqs.set(e.writer, [...(seqs.get(e.writer) ?? []), e.seq]);
  const seqGaps = new Map<string, number>();
  let totalGaps = 0;
  for (const [writer, list] of seqs) {
    const unique = new Set(list);
    const gaps = Math.max(...unique) - unique.size;
    if (gaps > 0) seqGaps.set(writer, gaps);
    totalGaps += gaps;
  }
  if (totalGaps !== (o.expectedSeqGaps ?? 0)) violations.push(`seq gaps: ${totalGaps} missing seq numbers, expected ${o.expectedSeqGaps ?? 0}`);

  const ledger = await ledgerRecords(o.ledger);
  if (ledger.invalid.length > (o.allowInvalidLedgerLines ?? 0)) violations.push(`${ledger.invalid.length} malformed lines in the ledger (allowed ${o.allowInvalidLedgerLines ?? 0}): ${JSON.stringify(ledger.invalid.slice(0, 3))}`);
  if (ledger.entries.length !== shipped.length) violations.push(`ledger holds ${ledger.entries.length} entries, objects ${shipped.length}`);

  const { exit, report } = await runConsumer(o.source, o.out, o.consumerFlags);
  if (exit.code !== 0 || !report) {
    violations.push(`consumer exited ${exit.code}: ${exit.stderr.slice(0, 500)}`);
  } else {
    if (report.entries_read !== counts.size) violations.push(`consumer read ${report.entries_read} entries, the objects hold ${counts.size} unique ids`);
    if (report.duplicates !== 0) violations.push(`consumer saw ${report.duplicates} duplicates`);
    duplicated += report.duplicates;
    lost += Math.max(0, counts.size - report.entries_read);
    if (report.invalid_lines.count !== 0) violations.push(`consumer found ${report.invalid_lines.count} invalid lines in ledger objects`);
    if (report.objects.bad.length !== 0) violations.push(`consumer could not read ${report.objects.bad.length} objects`);
    if (report.quarantined_lines !== ledger.invalid.length) violations.push(`consumer counts ${report.quarantined_lines} quarantined lines, the ledger has ${ledger.invalid.length} malformed`);
    if (report.seq_gaps.missing !== totalGaps) violations.push(`consumer reports ${report.seq_gaps.missing} missing seqs, the objects show ${totalGaps}`);
  }
  return { entries: o.acked.length, lost, duplicated, violations, notes, objects, report, seqGaps };
}

export function formatMb(n: number): string {
  return n > 0 ? `${n.toFixed(0)} MiB` : '-';
}

/** Removes a scenario's temp root unless FAULTS_KEEP=1 (then says where it is). */
export function removeRoot(root: string): void {
  if (process.env.FAULTS_KEEP === '1') process.stderr.write(`faults: kept ${root}\n`);
  else fs.rmSync(root, { recursive: true, force: true });
}
