/** Parsing of the CLI's time flags (--from, --to, --now): a real calendar time or a clear refusal. */
import { FlagValueError } from './flag-parser.js';

export const TIME_HINT = 'use ISO 8601 with a zone, e.g. 2026-11-24T10:00:00Z, or a date 2026-11-24 (UTC midnight)';
const FORMAT = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?(Z|([+-])(\d{2}):(\d{2})))?$/;

const daysIn = (year: number, month: number): number => new Date(Date.UTC(year, month, 0)).getUTCDate();

/**
 * An RFC 3339 time with a zone, or a bare date (UTC midnight). Impossible dates and times
 * (2026-02-30, 25:00, +24:00) are refused instead of rolling over into the next month or day.
 */
export function parseTime(s: string): Date {
  const m = FORMAT.exec(s);
  if (!m) throw new FlagValueError(`invalid time ${JSON.stringify(s)}: not an ISO 8601 time with a zone, nor a date`, TIME_HINT);
  const [year, month, day, hour, minute, second] = [m[1], m[2], m[3], m[4] ?? '0', m[5] ?? '0', m[6] ?? '0'].map(Number) as [number, number, number, number, number, number];
  const problem =
    month < 1 || month > 12
      ? `there is no month ${month}`
      : day < 1 || day > daysIn(year, month)
        ? `${m[1]}-${m[2]} has no day ${day}`
        : hour > 23 || minute > 59 || second > 59
          ? `${m[4]}:${m[5]}${m[6] ? `:${m[6]}` : ''} is not a time of day`
          : m[9] && (Number(m[10]) > 23 || Number(m[11]) > 59)
            ? `${m[8]} is not a zone offset`
            : undefined;
  if (problem) throw new FlagValueError(`invalid time ${JSON.stringify(s)}: ${problem}`, TIME_HINT);
  const d = new Date(m[4] === undefined ? `${s}T00:00:00Z` : s);
  if (!Number.isFinite(d.getTime())) throw new FlagValueError(`invalid time ${JSON.stringify(s)}`, TIME_HINT);
  return d;
}
