/** The error record a `metering` command printed on stderr (pino JSON: it is not a terminal in tests). */
export interface CliErrorRecord {
  level: number;
  name: string;
  msg: string;
  hint?: string;
  exit_code?: number;
}

export function cliError(stderr: string): CliErrorRecord {
  const records = stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as CliErrorRecord)
    .filter((r) => r.level >= 50);
  const last = records[records.length - 1];
  if (!last) throw new Error(`no error record on stderr:\n${stderr}`);
  return last;
}
