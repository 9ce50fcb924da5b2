/** Exact splitting of a time range into UTC hours: integer milliseconds, nothing rounded. */
import { HOUR_MS } from './types.js';

export interface HourSlice {
  /** epoch ms of the start of the UTC hour */
  hour: number;
  /** integer milliseconds of [start, end) inside that hour */
  ms: number;
}

export const hourFloor = (t: number): number => Math.floor(t / HOUR_MS) * HOUR_MS;

/** The pieces of [start, end) in each hour it touches; empty when end <= start. The ms sum to end - start. */
export function splitByHour(start: number, end: number): HourSlice[] {
  const out: HourSlice[] = [];
  for (let hour = hourFloor(start); hour < end; hour += HOUR_MS) {
    const ms = Math.min(end, hour + HOUR_MS) - Math.max(start, hour);
    if (ms > 0) out.push({ hour, ms });
  }
  return out;
}
