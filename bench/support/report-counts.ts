/**
 * What a consumer run produced, from its report.json: the one output whose name and fields are the
 * same for every engine (the TypeScript consumer writes hourly.ndjson, the DuckDB engine hive
 * partitions; both write report.json with these totals).
 */
import * as fs from 'node:fs';

export interface ReportCounts {
  /** Every entry read so far (all runs on this state). */
  entries: number;
  intervals: number;
  hourly: number;
}

export function readReportCounts(file: string): ReportCounts {
  const r = JSON.parse(fs.readFileSync(file, 'utf8')) as { entries_read?: unknown; intervals?: { total?: unknown }; hourly_rows?: { total?: unknown } };
  const n = (v: unknown, what: string): number => {
    if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw new Error(`${file}: ${what} is ${JSON.stringify(v)}, expected an integer`);
    return v;
  };
  return { entries: n(r.entries_read, 'entries_read'), intervals: n(r.intervals?.total, 'intervals.total'), hourly: n(r.hourly_rows?.total, 'hourly_rows.total') };
}
