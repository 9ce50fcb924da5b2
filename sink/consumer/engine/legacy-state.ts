/**
 * Carrying a state of the earlier consumer (the JSON-lines `state.json`, versions 2 and 3) into the
 * engine's database: what was published must stay published with its versions, and the revisions
 * already emitted stay emitted. Everything else (entries, verdicts, node progress) is rebuilt by
 * re-reading every object, as the JSON consumer itself did when it migrated a version 2 state.
 *
 * The format read here is the one test/reference/state-store.ts writes: a header line
 * `{"v":3,"source":...,"watermark":ms|null,"horizon":ms|null,...}`, then records
 * `["published", key, ms | {version, ms, revises, previous_ms}]`, `["revision", row]`, others
 * (ignored), and `["end", count]`. A published key is `<hour><TAB><family><TAB><resource><TAB><node>
 * <TAB><"" | "\n" + hypervisor><TAB><cpu><TAB><mem><TAB><storage>`, numbers prefixed by their
 * digit count (2 digits).
 */
import * as fs from 'node:fs';
import * as readline from 'node:readline';
import type { DuckDBConnection } from '@duckdb/node-api';
import { StateFileError } from '../state-error.js';
import type { HourlyRow } from '../types.js';

export interface LegacyState {
  watermark: number | null;
  horizon: number | null;
  published: number;
  revisions: number;
}

/** Does `file` hold a JSON-lines state of the earlier consumer (its first byte is `{`)? */
export function isLegacyState(file: string): boolean {
  let fd: number | undefined;
  try {
    fd = fs.openSync(file, 'r');
    const b = Buffer.alloc(1);
    return fs.readSync(fd, b, 0, 1, 0) === 1 && b[0] === 0x7b;
  } catch {
    return false;
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

const num = (field: string): number => Number(field.slice(2));

interface PublishedValue {
  version: number;
  ms: number;
  revises: number | null;
  previous_ms: number | null;
}

/**
 * Reads `file` (source checked) into metering_hourly (final rows), metering_revisions (run 0) and a
 * run 0 that says the next run re-reads. Call inside the run's transaction on a fresh database.
 */
export async function importLegacyState(conn: DuckDBConnection, file: string, source: string): Promise<LegacyState> {
  const broken = (why: string): StateFileError => new StateFileError(`state file ${file} ${why}; restore it from a backup, or move it away to rebuild from scratch (published rows would be re-published as version 1)`);
  const hourly = await conn.createAppender('metering_hourly');
  const revisions = await conn.createAppender('metering_revisions');
  const result: LegacyState = { watermark: null, horizon: null, published: 0, revisions: 0 };
  let header = false;
  let ended = false;
  const lines = readline.createInterface({ input: fs.createReadStream(file, { encoding: 'utf8' }), crlfDelay: Infinity });
  const nullable = (a: typeof hourly, v: number | null): void => (v === null ? a.appendNull() : a.appendBigInt(BigInt(v)));
  try {
    for await (const line of lines) {
      let value: unknown;
      try {
        value = JSON.parse(line);
      } catch (err) {
        throw broken(`is not valid JSON (${(err as Error).message})`);
      }
      if (!header) {
        const h = value as { v?: unknown; source?: unknown; watermark?: unknown; horizon?: unknown } | null;
        if (typeof h !== 'object' || h === null || (h.v !== 2 && h.v !== 3)) throw new StateFileError(`state file ${file} has version ${JSON.stringify(h?.v)}; this consumer carries over versions 2 and 3`);
        if (h.source !== source) throw new StateFileError(`state file ${file} belongs to source ${String(h.source)}, not ${source}; use a separate --state (or --out) per source`);
        result.watermark = typeof h.watermark === 'number' ? h.watermark : null;
        result.horizon = h.v === 3 && typeof h.horizon === 'number' ? h.horizon : null;
        header = true;
        continue;
      }
      const rec = value as [string, ...unknown[]];
      if (rec[0] === 'end') {
        ended = true;
        continue;
      }
      if (rec[0] === 'published') {
        const [hour, family, resource, node, hv, cpu, mem, storage] = String(rec[1]).split('\t');
        if (storage === undefined) throw broken('has a published row with a malformed key');
        const v = rec[2] as number | PublishedValue;
        const p: PublishedValue = typeof v === 'number' ? { version: 1, ms: v, revises: null, previous_ms: null } : v;
        hourly.appendBigInt(BigInt(num(hour!)));
        hourly.appendVarchar(family!);
        hourly.appendVarchar(resource!);
        hourly.appendVarchar(node!);
        if (hv === '') hourly.appendNull();
        else hourly.appendVarchar(hv!.slice(1));
        hourly.appendBigInt(BigInt(num(cpu!)));
        hourly.appendBigInt(BigInt(num(mem!)));
        hourly.appendBigInt(BigInt(num(storage)));
        hourly.appendBigInt(BigInt(p.ms));
        hourly.appendBoolean(true);
        hourly.appendBigInt(BigInt(p.version));
        nullable(hourly, p.revises);
        nullable(hourly, p.previous_ms);
        hourly.endRow();
        result.published++;
      } else if (rec[0] === 'revision') {
        const r = rec[1] as HourlyRow;
        revisions.appendBigInt(0n);
        revisions.appendBigInt(BigInt(++result.revisions));
        revisions.appendBigInt(BigInt(Date.parse(r.hour)));
        revisions.appendVarchar(r.family);
        revisions.appendVarchar(r.resource_id);
        revisions.appendVarchar(r.node);
        if (r.hypervisor === null) revisions.appendNull();
        else revisions.appendVarchar(r.hypervisor);
        revisions.appendBigInt(BigInt(r.cpu));
        revisions.appendBigInt(BigInt(r.mem_bytes));
        revisions.appendBigInt(BigInt(r.storage_bytes));
        revisions.appendBigInt(BigInt(r.ms));
        revisions.appendBigInt(BigInt(r.version));
        nullable(revisions, r.revises);
        nullable(revisions, r.previous_ms);
        revisions.endRow();
      }
    }
    hourly.flushSync();
    revisions.flushSync();
  } catch (err) {
    if (err instanceof StateFileError) throw err;
    throw new StateFileError(`cannot read state file ${file}: ${(err as Error).message}`);
  } finally {
    lines.close();
    hourly.closeSync();
    revisions.closeSync();
  }
  if (!header) throw broken('is empty');
  if (!ended) throw broken('is cut short (no end line)');
  const sqlNum = (v: number | null): string => (v === null ? 'NULL' : String(v));
  await conn.run(
    `INSERT INTO metering_runs (run, now_ms, previous_watermark_ms, arrival_watermark_ms, arrival_horizon_ms, watermark_ms, watermark_computed_ms, horizon_ms, next_rereads)
     VALUES (0, 0, NULL, NULL, NULL, ${sqlNum(result.watermark)}, ${sqlNum(result.watermark)}, ${sqlNum(result.horizon)}, TRUE)`,
  );
  return result;
}
