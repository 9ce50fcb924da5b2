/**
 * report.json of a BigQuery run, read back from the tables the rules left in the dataset: the same
 * shape as the other engines' (counts exact, item lists capped at 1000 in the query, so what comes
 * back is small whatever the fleet). The hourly rows and intervals themselves stay in BigQuery.
 */
import type { Family } from '../../../src/index.js';
import { tableName } from '../../sql/render.js';
import type { BadObject, Counted, RollupReport } from '../report.js';
import type { EntryFinding, InvalidLineFinding, SeqGap } from '../findings.js';
import { iso, type TimelineAnomaly } from '../types.js';

const CAP = 1000;

type Row = Record<string, unknown>;
type Query = (sql: string, label: string) => Promise<Row[]>;

const num = (v: unknown): number => {
  const n = typeof v === 'number' ? v : typeof v === 'string' ? Number(v) : NaN;
  if (!Number.isFinite(n)) throw new Error(`BigQuery returned ${JSON.stringify(v)} where the report needs a number`);
  return n;
};
const numOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : num(v));
const str = (v: unknown): string => String(v);
const strOrNull = (v: unknown): string | null => (v === null || v === undefined ? null : String(v));
const isoOrNull = (v: unknown): string | null => (v === null || v === undefined ? null : iso(num(v)));

export interface ReportContext {
  dataset: string;
  source: string;
  run: number;
  now: number;
  graceMs: number;
  staleAfterMs: number;
  retainMs: number;
  maxSkewMs: number;
  bad: BadObject[];
  unknown: string[];
}

export interface BigQueryReport {
  report: RollupReport;
  /** Valid entries this run staged. */
  entriesNew: number;
  newRevisions: number;
}

export async function readBigQueryReport(query: Query, c: ReportContext): Promise<BigQueryReport> {
  const t = (name: string): string => tableName('bigquery', name, { dataset: c.dataset });
  const [s] = await query(
    `SELECT
  w.watermark_ms, w.computed_ms, w.min_complete_ms, r.horizon_ms,
  (SELECT COUNT(*) FROM ${t('entries')}) AS entries_read,
  (SELECT COUNT(*) FROM ${t('kept')}) AS ids,
  (SELECT COUNT(*) FROM ${t('entries')} WHERE run = ${c.run}) AS entries_new,
  (SELECT COUNTIF(cls = 'ledger') FROM ${t('objects')}) AS ledger_read,
  (SELECT COUNTIF(cls = 'quarantine') FROM ${t('objects')}) AS quarantine_read,
  (SELECT COALESCE(SUM(quarantined), 0) FROM ${t('objects')}) AS quarantined,
  (SELECT COUNT(*) FROM ${t('invalid_lines')}) AS invalid,
  (SELECT COUNT(*) FROM ${t('revisions')}) AS revisions,
  (SELECT COUNT(*) FROM ${t('revisions')} WHERE run = ${c.run}) AS new_revisions,
  (SELECT COUNT(*) FROM ${t('intervals')}) AS intervals_total,
  (SELECT COUNTIF(end_ms IS NULL) FROM ${t('intervals')}) AS intervals_open,
  (SELECT COUNTIF(unconfirmed_end) FROM ${t('intervals')}) AS intervals_unconfirmed,
  (SELECT COUNT(*) FROM ${t('hourly')}) AS hourly_total,
  (SELECT COUNTIF(final) FROM ${t('hourly')}) AS hourly_final,
  (SELECT COUNT(DISTINCT writer) FROM ${t('seq_gaps')}) AS gap_writers,
  (SELECT COALESCE(SUM(gap_hi - gap_lo + 1), 0) FROM ${t('seq_gaps')}) AS gap_missing
FROM ${t('watermark')} AS w
CROSS JOIN (SELECT horizon_ms FROM ${t('runs')} WHERE run = ${c.run}) AS r`,
    'the report summary',
  );
  if (!s) throw new Error(`BigQuery returned no watermark for run ${c.run}: the rules did not finish (tables ${t('watermark')}, ${t('runs')})`);

  const counts = new Map(
    (
      await query(
        `SELECT finding AS list, COUNT(*) AS n FROM ${t('findings')} GROUP BY finding
UNION ALL
SELECT anomaly_type AS list, COUNT(*) AS n FROM ${t('anomalies')} GROUP BY anomaly_type`,
        'the report counts',
      )
    ).map((r) => [str(r.list), num(r.n)]),
  );
  const findingRows = await query(
    `SELECT finding, object, line_offset, id, node, emitted_at
FROM (SELECT f.*, ROW_NUMBER() OVER (PARTITION BY finding ORDER BY object, line_offset) AS rn FROM ${t('findings')} AS f) AS x
WHERE rn <= ${CAP}
ORDER BY finding, object, line_offset`,
    'the report findings',
  );
  const findings = (name: string): Counted<EntryFinding> => ({
    count: counts.get(name) ?? 0,
    items: findingRows.filter((r) => r.finding === name).map((r) => ({ object: str(r.object), offset: num(r.line_offset), id: str(r.id), node: str(r.node), emitted_at: str(r.emitted_at) })),
  });
  const anomalyRows = await query(
    `SELECT anomaly_type, family, resource_id, event_id, node, t
FROM (SELECT a.*, ROW_NUMBER() OVER (PARTITION BY anomaly_type ORDER BY t, event_id) AS rn FROM ${t('anomalies')} AS a) AS x
WHERE rn <= ${CAP}
ORDER BY anomaly_type, t, event_id`,
    'the report anomalies',
  );
  const anomalies = (type: TimelineAnomaly['type']): Counted<TimelineAnomaly> => ({
    count: counts.get(type) ?? 0,
    items: anomalyRows
      .filter((r) => r.anomaly_type === type)
      .map((r) => ({ type, family: str(r.family) as Family, resource_id: str(r.resource_id), event_id: str(r.event_id), node: str(r.node), emitted_at: iso(num(r.t)) })),
  });
  const invalidItems: InvalidLineFinding[] = (await query(`SELECT object, line_offset, length, reason FROM ${t('invalid_lines')} ORDER BY run, object, line_offset LIMIT ${CAP}`, 'the report invalid lines')).map((r) => ({
    object: str(r.object),
    offset: num(r.line_offset),
    length: num(r.length),
    reason: str(r.reason),
  }));
  const gaps: SeqGap[] = [];
  for (const g of await query(
    `SELECT writer, node, gap_lo, gap_hi FROM (SELECT g.*, DENSE_RANK() OVER (ORDER BY writer) AS wr FROM ${t('seq_gaps')} AS g) AS x WHERE wr <= ${CAP} ORDER BY writer, gap_lo`,
    'the report seq gaps',
  )) {
    const writer = str(g.writer);
    let last = gaps[gaps.length - 1];
    if (!last || last.writer !== writer) gaps.push((last = { writer, node: str(g.node), missing: [], count: 0 }));
    const lo = num(g.gap_lo);
    const hi = num(g.gap_hi);
    last.missing.push([lo, hi]);
    last.count += hi - lo + 1;
  }
  const staleItems = (
    await query(
      `SELECT family, resource_id, node, start_ms, end_ms FROM ${t('intervals')} WHERE unconfirmed_end ORDER BY family, resource_id, start_ms, start_event_id LIMIT ${CAP}`,
      'the report stale intervals',
    )
  ).map((r) => ({ family: str(r.family) as Family, resource_id: str(r.resource_id), node: str(r.node), start: iso(num(r.start_ms)), end: isoOrNull(r.end_ms) }));
  const minComplete = numOrNull(s.min_complete_ms);
  const nodes = (await query(`SELECT node, reported_ms, complete_ms, updated_ms, backlog_bytes, stale, trusted_ms, progress_error FROM ${t('nodes')} ORDER BY node`, 'the report nodes')).map((n) => ({
    node: str(n.node),
    reported_at: isoOrNull(n.reported_ms),
    complete_through: isoOrNull(n.complete_ms),
    updated_at: isoOrNull(n.updated_ms),
    backlog_bytes: numOrNull(n.backlog_bytes),
    stale: n.stale === true,
    holds_watermark: n.stale !== true && minComplete !== null && (numOrNull(n.trusted_ms) ?? 0) === minComplete && minComplete < c.now,
    progress_error: strOrNull(n.progress_error),
  }));

  const report: RollupReport = {
    v: 1,
    source: c.source,
    now: iso(c.now),
    watermark: iso(num(s.watermark_ms)),
    watermark_computed: iso(num(s.computed_ms)),
    grace_ms: c.graceMs,
    stale_after_ms: c.staleAfterMs,
    retain_ms: c.retainMs,
    max_skew_ms: c.maxSkewMs,
    horizon: isoOrNull(s.horizon_ms),
    nodes,
    objects: { ledger_read: num(s.ledger_read), quarantine_read: num(s.quarantine_read), bad: c.bad, unknown: c.unknown },
    entries_read: num(s.entries_read),
    duplicates: num(s.entries_read) - num(s.ids),
    conflicting_duplicates: findings('conflicting_duplicates'),
    seq_conflicts: findings('seq_conflicts'),
    invalid_lines: { count: num(s.invalid), items: invalidItems },
    quarantined_lines: num(s.quarantined),
    orphan_stops: anomalies('orphan_stop'),
    duplicate_starts: anomalies('duplicate_start'),
    duplicate_stops: anomalies('duplicate_stop'),
    handoff_stops: anomalies('handoff_stop'),
    seq_gaps: { writers: num(s.gap_writers), missing: num(s.gap_missing), items: gaps },
    stale_intervals: { count: num(s.intervals_unconfirmed), items: staleItems },
    late_entries: findings('late_entries'),
    too_late_entries: findings('too_late_entries'),
    clock_skew_entries: findings('clock_skew_entries'),
    node_mismatches: findings('node_mismatches'),
    intervals: { total: num(s.intervals_total), open: num(s.intervals_open), unconfirmed_end: num(s.intervals_unconfirmed) },
    hourly_rows: { total: num(s.hourly_total), final: num(s.hourly_final), provisional: num(s.hourly_total) - num(s.hourly_final) },
    revisions: num(s.revisions),
  };
  return { report, entriesNew: num(s.entries_new), newRevisions: num(s.new_revisions) };
}
