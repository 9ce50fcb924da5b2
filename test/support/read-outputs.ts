/**
 * Reads what `metering rollup` (the engine) wrote under --out, in partition order, into arrays:
 * hourly/dt=YYYY-MM-DD/hourly.<ext>, intervals/dt=YYYY-MM-DD/intervals.<ext>,
 * revisions/run=NNNNNN/revisions.<ext> and report.json (sink/consumer/outputs/partitions.ts).
 * Partition names sort as their days and runs do, so concatenating the files in name order gives
 * the rows in the order the flat files had.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { HourlyRow, OutputFormat, RollupReport, UsageInterval } from 'metering-ledger/sink';
import { tempDir } from './tmp.js';

export type Output = 'hourly' | 'intervals' | 'revisions';

export interface Outputs {
  hourly: HourlyRow[];
  intervals: UsageInterval[];
  revisions: HourlyRow[];
  report: RollupReport;
}

const PARTITION = { hourly: /^dt=\d{4}-\d{2}-\d{2}$/, intervals: /^dt=\d{4}-\d{2}-\d{2}$/, revisions: /^run=\d{6}$/ } as const;

/** The partition files of one output, in partition order (none when the output directory is missing). */
export function partitionFiles(out: string, output: Output, format: OutputFormat = 'ndjson'): string[] {
  const dir = path.join(out, output);
  if (!fs.existsSync(dir)) return [];
  const files: string[] = [];
  for (const part of fs.readdirSync(dir).sort()) {
    if (!PARTITION[output].test(part)) throw new Error(`unexpected entry ${output}/${part} in ${out}`);
    const file = path.join(dir, part, `${output}.${format}`);
    if (fs.existsSync(file)) files.push(file);
  }
  return files;
}

const ndjson = <T>(file: string): T[] =>
  fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as T);

/** The rows of one output, all partitions concatenated in order. */
export function readOutput<T = HourlyRow>(out: string, output: Output): T[] {
  return partitionFiles(out, output).flatMap((f) => ndjson<T>(f));
}

export const readHourly = (out: string): HourlyRow[] => readOutput<HourlyRow>(out, 'hourly');
export const readIntervals = (out: string): UsageInterval[] => readOutput<UsageInterval>(out, 'intervals');
export const readRevisions = (out: string): HourlyRow[] => readOutput<HourlyRow>(out, 'revisions');
export const readReport = (out: string): RollupReport => JSON.parse(fs.readFileSync(path.join(out, 'report.json'), 'utf8')) as RollupReport;

/** Every output of an ndjson --out. */
export function readOutputs(out: string): Outputs {
  return { hourly: readHourly(out), intervals: readIntervals(out), revisions: readRevisions(out), report: readReport(out) };
}

/** Every output of a parquet --out, read back with DuckDB's read_parquet (as JSON rows, like the ndjson files). */
export async function readParquetOutputs(out: string): Promise<Outputs> {
  const { DuckDBInstance } = await import('@duckdb/node-api');
  const instance = await DuckDBInstance.create(':memory:');
  const conn = await instance.connect();
  const t = tempDir('read-parquet');
  try {
    const read = async <T>(output: Output): Promise<T[]> => {
      const rows: T[] = [];
      for (const [i, file] of partitionFiles(out, output, 'parquet').entries()) {
        const json = path.join(t.dir, `${output}-${i}.ndjson`);
        await conn.run(`COPY (SELECT * FROM read_parquet('${file.replaceAll("'", "''")}', hive_partitioning = false)) TO '${json.replaceAll("'", "''")}' (FORMAT json)`);
        rows.push(...ndjson<T>(json));
      }
      return rows;
    };
    return { hourly: await read<HourlyRow>('hourly'), intervals: await read<UsageInterval>('intervals'), revisions: await read<HourlyRow>('revisions'), report: readReport(out) };
  } finally {
    conn.closeSync();
    instance.closeSync();
    t.cleanup();
  }
}

/** Every file under `dir` (relative paths, sorted): to compare layouts and bytes between runs. */
export function filesUnder(dir: string): string[] {
  const out: string[] = [];
  const walk = (rel: string): void => {
    for (const e of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      const r = rel ? path.join(rel, e.name) : e.name;
      if (e.isDirectory()) walk(r);
      else out.push(r);
    }
  };
  walk('');
  return out.sort();
}

/** Every output file under an --out (not the state database and its temp directory), by relative path, with its text. */
export function outputTexts(dir: string): Record<string, string> {
  return Object.fromEntries(filesUnder(dir).filter((rel) => !rel.startsWith('state.duckdb')).map((rel) => [rel, fs.readFileSync(path.join(dir, rel), 'utf8')]));
}
