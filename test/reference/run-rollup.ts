/**
 * The reference model of the consumer (test/reference/README.md): one rollup run in plain
 * TypeScript. Read new objects, add their entries to the per-id records (ingest.ts), judge them
 * (entry-verdicts.ts), compute the watermark, derive intervals and hourly rows, publish (with
 * revisions), write outputs (flat files) and state (state.json).
 *
 * Everything published is a function of the per-id records (whose kept copy does not depend on
 * arrival order) and the watermark, so a re-run with nothing new produces the same outputs, and the order in which
 * objects arrive, or how they are split over runs, does not change the intervals or the row values.
 */
import * as path from 'node:path';
import { pino } from 'pino';
import type { Logger } from '../../src/index.js';
import { removeStaleTempFiles, writeFileAtomic, writeNdjsonAtomic } from '../../sink/atomic-file.js';
import { openDestination } from '../../sink/destinations/open.js';
import type { BadObject, RollupReport } from '../../sink/consumer/report.js';
import { rollupSettings, type RollupOptions, type RunSummary } from '../../sink/consumer/rollup-options.js';
import { assertSourceExists, countQuarantineLines, listSource, readLedgerObject, readProgressObjects, type ObjectRead } from '../../sink/consumer/source-reader.js';
import { acquireStateLock } from '../../sink/consumer/state-lock.js';
import { iso, type HourlyRow, type UsageInterval } from '../../sink/consumer/types.js';
import { deriveIntervals } from './derive-intervals.js';
import { judgeEntries } from './entry-verdicts.js';
import { hourlyTotals } from './hourly-rollup.js';
import { addCopy, type Arrival } from './ingest.js';
import { anomaliesOf, counted, reportedNode } from './report-items.js';
import { publish } from './revisions.js';
import { emptyState, loadState, pushFinding, saveState } from './state-store.js';
import { computeWatermark, type NodeEvidence } from './watermark.js';

export interface RollupResult {
  intervals: UsageInterval[];
  hourly: HourlyRow[];
  /** Revisions emitted by this run (all of them are in revisions.ndjson). */
  revisions: HourlyRow[];
  report: RollupReport;
  run: RunSummary;
}


const silentLogger = (): Logger => pino({ level: 'silent' });

export async function runRollup(options: RollupOptions): Promise<RollupResult> {
  const log = options.logger ?? silentLogger();
  const progress = options.onProgress ?? ((): void => {});
  const { now, graceMs, staleAfterMs, retainMs, maxSkewMs } = rollupSettings(options);
  const { destination, prefix } = options.destination ?? (await openDestination(options.source));
  const stateFile = options.state ?? (options.out ? path.join(options.out, 'state.json') : undefined);
  const lock = stateFile ? await acquireStateLock(stateFile) : undefined;
  try {
    // Temp files of a run killed mid-write (kill -9) are litter: remove those of dead processes.
    for (const dir of new Set([stateFile && path.dirname(stateFile), options.out].filter((d): d is string => !!d))) await removeStaleTempFiles(dir);
    const state = stateFile ? await loadState(stateFile, options.source) : emptyState(options.source);
    const previousWatermark = state.watermark;
    assertSourceExists(destination, options.source);

    progress({ phase: 'list', objectsDone: 0, objectsTotal: 0, entries: 0 });
    const listing = await listSource(destination, prefix);
    const newLedger = listing.ledger.filter((o) => state.objects[o.name] === undefined);
    const newQuarantine = listing.quarantine.filter((o) => state.quarantine[o.name] === undefined);
    const total = newLedger.length + newQuarantine.length;
    const bad: BadObject[] = [];
    // What this run stands on, for every id it sees first: decides "late" and "too late". A run that
    // re-reads everything after a state migration only re-reads what was read before.
    const arrival: Arrival = state.migrated_from !== undefined ? { horizon: null, watermark: null } : { horizon: state.horizon, watermark: previousWatermark };
    let entriesThisRun = 0;
    let done = 0;

    // Fetch a window ahead, fold in name order: memory bounded by the window, result deterministic.
    const window = Math.max(1, options.concurrency ?? 8);
    const pending: Promise<ObjectRead>[] = [];
    for (let i = 0; i < newLedger.length; i++) {
      while (pending.length < window && i + pending.length < newLedger.length) pending.push(readLedgerObject(destination, newLedger[i + pending.length]!.name));
      const object = newLedger[i]!;
      const read = await pending.shift()!;
      if (!read.ok) {
        bad.push({ object: object.name, error: read.error });
        log.warn({ object: object.name, error: read.error }, 'metering rollup: object skipped');
      } else {
        let entries = 0;
        let invalid = 0;
        for (const rec of read.records) {
          if (rec.type === 'entry') {
            entries++;
            addCopy(state.entries, rec.entry, object, rec.offset, arrival);
          } else {
            invalid++;
            state.invalid_lines++;
            pushFinding(state.invalid_findings, { object: object.name, offset: rec.offset, length: rec.length, reason: rec.reason });
          }
        }
        entriesThisRun += entries;
        if (invalid > 0) log.warn({ object: object.name, invalid }, 'metering rollup: invalid lines skipped');
        state.objects[object.name] = { entries, invalid };
      }
      progress({ phase: 'read', objectsDone: ++done, objectsTotal: total, entries: entriesThisRun });
    }
    for (const object of newQuarantine) {
      const lines = await countQuarantineLines(destination, object.name);
      if (typeof lines === 'number') state.quarantine[object.name] = lines;
      else bad.push({ object: object.name, error: lines.error });
      progress({ phase: 'read', objectsDone: ++done, objectsTotal: total, entries: entriesThisRun });
    }

    progress({ phase: 'compute', objectsDone: done, objectsTotal: total, entries: entriesThisRun });
    const evidence = new Map<string, NodeEvidence>();
    for (const r of await readProgressObjects(destination, listing.nodes)) {
      const ev: NodeEvidence = { listedUpdated: r.updated, lastKnown: state.nodes[r.node] };
      ev.read = r.usable ? { progress: r.progress!, updated: r.updated! } : { error: r.error! };
      if (r.readError !== undefined) bad.push({ object: r.name, error: r.readError });
      evidence.set(r.node, ev);
    }
    for (const [node, known] of Object.entries(state.nodes)) if (!evidence.has(node)) evidence.set(node, { lastKnown: known });
    const verdicts = judgeEntries(state.entries.values(), maxSkewMs);
    const nodesWithData = new Set(Object.values(verdicts.seq.writers).map((w) => w.node));
    const wm = computeWatermark({ nodes: evidence, nodesWithData, now, graceMs, staleAfterMs, previous: previousWatermark });
    state.nodes = Object.fromEntries(wm.known);
    const nodeStatus = new Map(wm.nodes.map((n) => [n.node, n]));

    const { intervals, anomalies } = deriveIntervals(verdicts.resources.values(), nodeStatus, now);
    const totals = hourlyTotals(intervals, wm.watermark);
    const published = new Map(Object.entries(state.published));
    const pub = publish(totals, published, wm.watermark, previousWatermark);
    state.published = Object.fromEntries(published);
    state.revisions.push(...pub.revisions);
    state.watermark = wm.watermark;
    state.horizon = wm.watermark - retainMs;
    delete state.migrated_from;

    const lastSeq = (writer: string): number | undefined => {
      const p = evidence.get(verdicts.seq.writers[writer]!.node)?.read;
      return p && 'progress' in p ? p.progress.writers?.[writer]?.last_seq : undefined;
    };
    const gaps = verdicts.seq.gaps(lastSeq);
    const stale = intervals.filter((i) => i.unconfirmed_end).map(({ family, resource_id, node, start, end }) => ({ family, resource_id, node, start, end }));
    const report: RollupReport = {
      v: 1,
      source: options.source,
      now: iso(now),
      watermark: iso(wm.watermark),
      watermark_computed: iso(wm.computed),
      grace_ms: graceMs,
      stale_after_ms: staleAfterMs,
      retain_ms: retainMs,
      max_skew_ms: maxSkewMs,
      horizon: iso(state.horizon),
      nodes: wm.nodes.map(reportedNode),
      objects: { ledger_read: Object.keys(state.objects).length, quarantine_read: Object.keys(state.quarantine).length, bad, unknown: listing.unknown },
      entries_read: verdicts.entries_read,
      duplicates: verdicts.duplicates,
      conflicting_duplicates: counted(verdicts.conflicting_duplicates),
      seq_conflicts: counted(verdicts.seq_conflicts),
      invalid_lines: counted(state.invalid_findings, state.invalid_lines),
      quarantined_lines: Object.values(state.quarantine).reduce((a, b) => a + b, 0),
      orphan_stops: anomaliesOf(anomalies, 'orphan_stop'),
      duplicate_starts: anomaliesOf(anomalies, 'duplicate_start'),
      duplicate_stops: anomaliesOf(anomalies, 'duplicate_stop'),
      handoff_stops: anomaliesOf(anomalies, 'handoff_stop'),
      seq_gaps: { writers: gaps.length, missing: gaps.reduce((n, g) => n + g.count, 0), items: gaps.slice(0, 1000) },
      stale_intervals: counted(stale),
      late_entries: counted(verdicts.late_entries),
      too_late_entries: counted(verdicts.too_late_entries),
      clock_skew_entries: counted(verdicts.clock_skew_entries),
      node_mismatches: counted(verdicts.node_mismatches),
      intervals: { total: intervals.length, open: intervals.filter((i) => i.end === null).length, unconfirmed_end: stale.length },
      hourly_rows: { total: pub.rows.length, final: pub.rows.filter((r) => r.final).length, provisional: pub.rows.filter((r) => !r.final).length },
      revisions: state.revisions.length,
    };

    progress({ phase: 'write', objectsDone: done, objectsTotal: total, entries: entriesThisRun });
    lock?.check();
    if (options.out) {
      await writeNdjsonAtomic(path.join(options.out, 'intervals.ndjson'), intervals);
      await writeNdjsonAtomic(path.join(options.out, 'hourly.ndjson'), pub.rows);
      await writeNdjsonAtomic(path.join(options.out, 'revisions.ndjson'), state.revisions);
      await writeFileAtomic(path.join(options.out, 'report.json'), JSON.stringify(report, null, 2) + '\n');
    }
    // State last: a crash before this line re-reads the same objects next time and publishes the same rows.
    lock?.check();
    if (stateFile) await saveState(stateFile, state);
    const run: RunSummary = { objects_read: done, entries_read: entriesThisRun, new_revisions: pub.revisions.length, watermark: report.watermark };
    log.info({ ...run, bad_objects: bad.length, intervals: intervals.length, hourly_rows: pub.rows.length }, 'metering rollup: done');
    return { intervals, hourly: pub.rows, revisions: pub.revisions, report, run };
  } finally {
    await lock?.release();
  }
}

