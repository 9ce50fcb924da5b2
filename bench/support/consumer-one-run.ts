/**
 * Issue 11, one run (A), and the opt-in 100 M run (C): `metering rollup` over a bucket it has
 * never seen, beside the DuckDB twin SQL alone (same engine and rules, DuckDB's JSON reader instead
 * of the TypeScript parser, same memory limit) and the reference TypeScript model, at growing
 * sizes of the same fleet (each node's first objects). Prints the table and the target lines.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { BuiltCli } from './build.js';
import { firstObjects, type Fleet, type Subset } from './consumer-fleet.js';
import { rollupCliArgs, runReferenceModel, runRollupCli, runTwinSqlAlone, type RunOutcome, type RunSpec } from './consumer-runs.js';
import { int, memoryBreakdown, mib, secs, table, type Target } from './report.js';

const GiB = 1024 ** 3;
/** Issue 11's bounds: peak RSS of a run, and the time `metering rollup` may take against the twin SQL alone. */
export const RSS_BOUND_BYTES = 2 * GiB;
export const TWIN_TIME_BOUND = 1.5;

export interface OneRunOptions {
  work: string;
  full: string;
  fleet: Fleet;
  cli: BuiltCli;
  /** Whether the CLI takes --memory-limit (today's TypeScript consumer does not). */
  cliMemoryLimit: boolean;
  memoryLimit: string;
  /** `metering rollup --chunk-bytes` (the CLI's default when not given). */
  chunkBytes: string | undefined;
  /** Entries per node of the largest set, and the fractions of it to run. */
  perNode: number;
  fractions: number[];
  /** C: the CLI alone (no twin, no reference model). */
  rollupOnly: boolean;
  /** Whether the reference model runs beside them (--no-reference: not, when only the A ratio is re-measured). */
  reference: boolean;
  limitMs: number;
  profileDir: string | undefined;
  /** --statement-log: each rollup's debug log (statements, phases, DuckDB memory by tag) into this directory. */
  statementLogDir: string | undefined;
  /** --keep: leave each set's bucket and the rollup's state, so a run that failed (C) can be carried on by hand. */
  keep: boolean;
  /** Heading for the printed section. */
  title: string;
}

interface Row {
  set: Subset;
  rollup: RunOutcome;
  twin: RunOutcome | undefined;
  /** Undefined: not run (C, or it did not finish on a smaller set). */
  reference: RunOutcome | undefined;
}

const eps = (entries: number, r: RunOutcome): number => entries / (r.usage.wallMs / 1000);
const timeCell = (r: RunOutcome | undefined): string => (!r ? 'not run' : r.counts ? secs(r.usage.wallMs) : r.usage.timedOut ? `> ${secs(r.usage.wallMs)} did not finish` : `${secs(r.usage.wallMs)} FAILED`);
const countsCell = (r: RunOutcome | undefined): string => (r?.counts ? `${int(r.counts.intervals)}, ${int(r.counts.hourly)}` : '-');

export async function runOneRun(o: OneRunOptions): Promise<Target[]> {
  const rows: Row[] = [];
  for (const fraction of o.fractions) {
    const set = firstObjects(o.full, o.fleet, path.join(o.work, `bucket-${fraction}`), Math.round(o.perNode * fraction));
    const tag = `${Math.round(set.entries / 1e5) / 10}M`;
    const spec = (who: string): RunSpec => ({
      bucket: set.dir,
      out: path.join(o.work, `${who}-${fraction}`),
      nowMs: set.nowMs,
      limitMs: o.limitMs,
      memoryLimit: o.memoryLimit,
      ...(o.chunkBytes !== undefined ? { chunkBytes: o.chunkBytes } : {}),
      ...(o.profileDir ? { profile: { dir: o.profileDir, name: `${who}-${tag}` } } : {}),
      ...(o.statementLogDir && who === 'rollup' ? { statementLog: path.join(o.statementLogDir, `rollup-${tag}.log`) } : {}),
    });
    console.log(`${int(set.entries)} entries in ${set.objects} objects: metering rollup...`);
    const rollup = await runRollupCli(o.cli, spec('rollup'), o.cliMemoryLimit);
    let twin: RunOutcome | undefined;
    let reference: RunOutcome | undefined;
    if (!o.rollupOnly) {
      console.log('  twin SQL alone...');
      twin = await runTwinSqlAlone(o.cli, spec('twin'));
      // The reference model dies somewhere between 3 and 10 M entries: after it did not finish once,
      // larger sets would only fail the same way, slower.
      const previous = rows.at(-1);
      if (o.reference && (!previous || previous.reference?.counts)) {
        console.log('  reference model...');
        reference = await runReferenceModel(spec('reference'));
      }
    }
    rows.push({ set, rollup, twin, reference });
    for (const who of ['twin', 'reference']) fs.rmSync(path.join(o.work, `${who}-${fraction}`), { recursive: true, force: true });
    if (o.keep) {
      // The chunks a failed run committed stand: the same command carries on from them.
      console.log(`  kept: carry on with  node ${rollupCliArgs(o.cli, spec('rollup'), o.cliMemoryLimit).join(' ')}`);
      continue;
    }
    fs.rmSync(path.join(o.work, `rollup-${fraction}`), { recursive: true, force: true });
    fs.rmSync(set.dir, { recursive: true, force: true });
  }

  console.log(`\n### ${o.title}\n`);
  const header = ['entries', 'objects', 'MiB', 'rollup s', 'rollup entries/s', 'rollup peak RSS MiB', 'rollup spill peak MiB', 'rollup state MiB'];
  if (!o.rollupOnly) header.push('twin SQL alone s', 'twin peak RSS MiB', 'rollup / twin time', 'reference s', 'reference peak RSS MiB', 'intervals, hourly rows: rollup / twin / reference');
  else header.push('intervals, hourly rows');
  console.log(
    table(
      header,
      rows.map((r) => {
        const cells = [int(r.set.entries), r.set.objects, mib(r.set.bytes), timeCell(r.rollup), r.rollup.counts ? int(eps(r.set.entries, r.rollup)) : '-', mib(r.rollup.usage.maxRssBytes), mib(r.rollup.spillPeakBytes), mib(r.rollup.stateBytes)];
        if (o.rollupOnly) return [...cells, countsCell(r.rollup)];
        const ratio = r.rollup.counts && r.twin?.counts ? `${(r.rollup.usage.wallMs / r.twin.usage.wallMs).toFixed(2)}x` : '-';
        return [...cells, timeCell(r.twin), r.twin ? mib(r.twin.usage.maxRssBytes) : '-', ratio, timeCell(r.reference), r.reference ? mib(r.reference.usage.maxRssBytes) : '-', `${countsCell(r.rollup)} / ${countsCell(r.twin)} / ${countsCell(r.reference)}`];
      }),
    ),
  );
  for (const r of rows) {
    const at = `over ${int(r.set.entries)} entries`;
    if (r.rollup.failure) console.log(`\nrollup ${at}: ${r.rollup.failure}`);
    if (r.rollup.usage.atPeak) console.log(`rollup ${at}: memory ${memoryBreakdown(r.rollup.usage.atPeak)}`);
    if (r.twin?.failure) console.log(`twin SQL alone ${at}: ${r.twin.failure}`);
    if (r.twin?.loader && r.twin.loader !== 'duckdb-json') console.log(`WARNING: twin ${at} ran with the ${r.twin.loader}: it is runSqlRollup as it is today, not the twin SQL alone`);
    if (r.reference?.failure) console.log(`reference model ${at}: ${r.reference.failure}`);
  }

  const largest = rows.at(-1)!;
  const at = int(largest.set.entries);
  const done = largest.rollup.counts !== undefined;
  const targets: Target[] = [
    { what: `rollup completes at ${at} entries`, value: done ? 1 : 0, shown: done ? 'yes' : 'no', target: 'completes', met: done },
    { what: `rollup peak RSS at ${at}`, value: largest.rollup.usage.maxRssBytes, shown: `${mib(largest.rollup.usage.maxRssBytes)} MiB${done ? '' : ' before it stopped'}`, target: `<= ${mib(RSS_BOUND_BYTES)} MiB, completed`, met: done && largest.rollup.usage.maxRssBytes <= RSS_BOUND_BYTES },
  ];
  for (const r of rows) {
    if (r.rollup.counts && r.rollup.counts.entries !== r.set.entries) targets.push({ what: `rollup read every entry at ${int(r.set.entries)}`, value: r.rollup.counts.entries, shown: int(r.rollup.counts.entries), target: `= ${int(r.set.entries)}`, met: false });
  }
  if (o.rollupOnly) {
    if (done) targets.push({ what: `rollup entries/s at ${at}`, value: eps(largest.set.entries, largest.rollup), shown: int(eps(largest.set.entries, largest.rollup)), target: 'report', met: undefined });
    targets.push(
      { what: `rollup spilled at ${at} (peak of the temp directory)`, value: largest.rollup.spillPeakBytes, shown: `${mib(largest.rollup.spillPeakBytes)} MiB`, target: 'report', met: undefined },
      { what: `rollup state after the run at ${at}`, value: largest.rollup.stateBytes, shown: `${mib(largest.rollup.stateBytes)} MiB`, target: 'report', met: undefined },
    );
    return targets;
  }
  const twin = largest.twin!;
  const twinIsAlone = twin.loader === 'duckdb-json';
  if (done && twin.counts) {
    const ratio = largest.rollup.usage.wallMs / twin.usage.wallMs;
    targets.push({ what: `rollup time / twin SQL alone at ${at}${twinIsAlone ? '' : ' (twin WITHOUT the JSON loader)'}`, value: ratio, target: `<= ${TWIN_TIME_BOUND}x`, met: twinIsAlone ? ratio <= TWIN_TIME_BOUND : undefined });
  } else {
    targets.push({ what: `rollup time / twin SQL alone at ${at}`, value: NaN, shown: 'no ratio', target: `<= ${TWIN_TIME_BOUND}x`, met: done ? undefined : false });
  }
  const agree = [largest.rollup, twin, largest.reference].filter((r): r is RunOutcome => r?.counts !== undefined);
  if (agree.length >= 2) {
    const same = agree.every((r) => r.counts!.intervals === agree[0]!.counts!.intervals && r.counts!.hourly === agree[0]!.counts!.hourly);
    targets.push({ what: `intervals and hourly rows agree at ${at} (${agree.length} that finished)`, value: same ? 1 : 0, shown: same ? 'yes' : 'no', target: 'equal', met: same });
  }
  const survived = rows.filter((r) => r.reference?.counts).at(-1);
  const died = rows.find((r) => r.reference && !r.reference.counts);
  targets.push({
    what: 'reference model finishes up to',
    value: survived?.set.entries ?? 0,
    shown: survived ? int(survived.set.entries) : 'none',
    target: died ? `report; did not finish at ${int(died.set.entries)}` : 'report',
    met: undefined,
  });
  return targets;
}
