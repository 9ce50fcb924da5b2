/**
 * Issue 11, daily increments (B): the fleet's history arrives one day at a time. Each day, the
 * objects whose last entry falls in that day land in the bucket (hard links, as a shipper's uploads
 * appear) with fresh progress objects, then one `metering rollup --out OUT` runs on the same state
 * with --now at the end of that day. A run's cost must follow the new data, not the history: the
 * last run's time and peak RSS against the 2nd's (the 1st has no history to carry).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { BuiltCli } from './build.js';
import { DAY_MS, landObjects, writeProgress, type Fleet } from './consumer-fleet.js';
import { runRollupCli, type RunOutcome } from './consumer-runs.js';
import type { ShippedObject } from './node-objects.js';
import { int, mib, secs, table, type Target } from './report.js';

/** Issue 11: the last daily run may cost at most this much more than the 2nd, in time and in peak RSS. */
export const FLAT_BOUND = 1.2;

export interface DailyOptions {
  work: string;
  full: string;
  fleet: Fleet;
  cli: BuiltCli;
  cliMemoryLimit: boolean;
  memoryLimit: string;
  days: number;
  startMs: number;
  limitMs: number;
  profileDir: string | undefined;
  /** Each day's per-statement debug log goes to <dir>/rollup-dayN.log. */
  statementLogDir: string | undefined;
  keep: boolean;
}

interface Day {
  day: number;
  objects: number;
  entries: number;
  /** Entries landed so far. */
  total: number;
  run: RunOutcome;
}

export async function runDaily(o: DailyOptions): Promise<Target[]> {
  const bucket = path.join(o.work, 'bucket-daily');
  const out = path.join(o.work, 'out-daily');
  const next = new Map<string, number>([...o.fleet.keys()].map((n) => [n, 0]));
  const through = new Map<string, number>();
  const days: Day[] = [];
  let total = 0;
  let stopped: string | undefined;
  for (let d = 0; d < o.days; d++) {
    const endMs = o.startMs + (d + 1) * DAY_MS;
    const arriving: ShippedObject[] = [];
    for (const [node, objects] of o.fleet) {
      let i = next.get(node)!;
      // An object is uploaded once complete: on the day its last entry was written.
      for (; i < objects.length && objects[i]!.lastMs < endMs; i++) {
        arriving.push(objects[i]!);
        through.set(node, objects[i]!.lastMs);
      }
      next.set(node, i);
    }
    const landed = landObjects(o.full, bucket, arriving);
    writeProgress(bucket, through, endMs);
    total += landed.entries;
    process.stdout.write(`day ${d + 1}/${o.days}: ${int(landed.entries)} new entries in ${landed.objects} objects (${int(total)} in all), metering rollup... `);
    const run = await runRollupCli(o.cli, { bucket, out, nowMs: endMs, limitMs: o.limitMs, memoryLimit: o.memoryLimit, ...(o.profileDir ? { profile: { dir: o.profileDir, name: `rollup-day${d + 1}` } } : {}), ...(o.statementLogDir ? { statementLog: path.join(o.statementLogDir, `rollup-day${d + 1}.log`) } : {}) }, o.cliMemoryLimit);
    console.log(run.counts ? `${secs(run.usage.wallMs)} s` : run.failure);
    days.push({ day: d + 1, objects: landed.objects, entries: landed.entries, total, run });
    if (!run.counts) {
      // The state is now whatever a failed run leaves: later days would measure something else.
      stopped = `day ${d + 1} ${run.failure}; the later days were not run`;
      break;
    }
  }
  // --keep leaves the last state and bucket for a look at what a late run does.
  if (!o.keep) {
    fs.rmSync(out, { recursive: true, force: true });
    fs.rmSync(bucket, { recursive: true, force: true });
  }

  console.log(`\n### Daily incremental runs: ${o.days} days of ${o.fleet.size} nodes, one \`metering rollup\` per day on one state\n`);
  console.log(
    table(
      ['day', 'new objects', 'new entries', 'entries in all', 'rollup s', 'peak RSS MiB', 'spill peak MiB', 'state MiB', 'entries read (report)', 'intervals', 'hourly rows'],
      days.map((d) => [
        d.day,
        d.objects,
        int(d.entries),
        int(d.total),
        d.run.counts ? secs(d.run.usage.wallMs) : `${secs(d.run.usage.wallMs)} FAILED`,
        mib(d.run.usage.maxRssBytes),
        mib(d.run.spillPeakBytes),
        mib(d.run.stateBytes),
        d.run.counts ? int(d.run.counts.entries) : '-',
        d.run.counts ? int(d.run.counts.intervals) : '-',
        d.run.counts ? int(d.run.counts.hourly) : '-',
      ]),
    ),
  );
  if (stopped) console.log(`\n${stopped}`);

  const all = days.length === o.days && !stopped;
  const targets: Target[] = [{ what: `daily runs completed`, value: days.filter((d) => d.run.counts).length, shown: `${days.filter((d) => d.run.counts).length}/${o.days}`, target: `${o.days}/${o.days}`, met: all }];
  const misread = days.filter((d) => d.run.counts && d.run.counts.entries !== d.total);
  if (misread.length) targets.push({ what: 'every landed entry read (report.json entries_read)', value: misread.length, shown: `${misread.length} days short`, target: 'every day', met: false });
  const second = days[1];
  const last = days.at(-1);
  if (o.days < 3) {
    targets.push({ what: `run ${o.days} vs run 2`, value: NaN, shown: 'n/a', target: 'needs --days >= 3', met: undefined });
  } else if (all && second && last) {
    const time = last.run.usage.wallMs / second.run.usage.wallMs;
    const rss = last.run.usage.maxRssBytes / second.run.usage.maxRssBytes;
    targets.push(
      { what: `run ${last.day} time / run 2 time`, value: time, target: `<= ${FLAT_BOUND}x`, met: time <= FLAT_BOUND },
      { what: `run ${last.day} peak RSS / run 2 peak RSS`, value: rss, target: `<= ${FLAT_BOUND}x`, met: rss <= FLAT_BOUND },
    );
  } else {
    targets.push({ what: `run ${o.days} vs run 2 (time, peak RSS)`, value: NaN, shown: 'no ratio', target: `<= ${FLAT_BOUND}x`, met: false });
  }
  return targets;
}
