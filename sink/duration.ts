/**
 * Human durations for flags: `500ms`, `30s`, `15m`, `12h`, `7d`, `2w`, or a sum like `1h30m`.
 * A bare number is refused on purpose: "7" could mean days or milliseconds.
 */
const UNIT_MS: Record<string, number> = {
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 7 * 86_400_000,
};
const PART_RE = /(\d+(?:\.\d+)?)(ms|s|m|h|d|w)/y;

/** Parses a duration into milliseconds; throws an Error that names the bad text and the accepted form. */
export function parseDuration(text: string): number {
  const s = text.trim();
  const fail = (): never => {
    throw new Error(`invalid duration ${JSON.stringify(text)}: use a number with a unit (ms, s, m, h, d, w), e.g. 500ms, 30s, 12h, 7d or 1h30m`);
  };
  if (s.length === 0) fail();
  let total = 0;
  PART_RE.lastIndex = 0;
  while (PART_RE.lastIndex < s.length) {
    const m = PART_RE.exec(s);
    if (!m) fail();
    total += Number(m![1]) * UNIT_MS[m![2]!]!;
  }
  if (!Number.isFinite(total)) fail();
  return Math.round(total);
}

const SIZE_UNITS: Record<string, number> = { '': 1, b: 1, k: 1e3, kb: 1e3, kib: 1024, m: 1e6, mb: 1e6, mib: 1024 ** 2, g: 1e9, gb: 1e9, gib: 1024 ** 3 };

/** Parses a byte size: `8388608`, `8MiB`, `512KiB`, `1GB`. Throws a clear Error otherwise. */
export function parseByteSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  const unit = m ? SIZE_UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) throw new Error(`invalid size ${JSON.stringify(text)}: use bytes or a unit (KiB, MiB, GiB, KB, MB, GB), e.g. 8MiB`);
  const n = Math.round(Number(m[1]) * unit);
  if (!Number.isSafeInteger(n)) throw new Error(`invalid size ${JSON.stringify(text)}: too large`);
  return n;
}

/** The largest whole unit for a default in help text: 300000 -> "5m", 604800000 -> "7d". */
export function formatDuration(ms: number): string {
  for (const unit of ['d', 'h', 'm', 's'] as const) if (ms >= UNIT_MS[unit]! && ms % UNIT_MS[unit]! === 0) return `${ms / UNIT_MS[unit]!}${unit}`;
  return `${ms}ms`;
}

/** A byte size for help text: 8388608 -> "8MiB", 65536 -> "64KiB". */
export function formatByteSize(n: number): string {
  for (const [unit, size] of [['GiB', 1024 ** 3], ['MiB', 1024 ** 2], ['KiB', 1024]] as const) if (n >= size && n % size === 0) return `${n / size}${unit}`;
  return `${n}`;
}
