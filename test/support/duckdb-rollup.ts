/** Runs the DuckDB twin (sink/sql/duckdb/*.sql) over a local bucket directory, as a user would. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DuckDBInstance } from '@duckdb/node-api';

const SQL_DIR = fileURLToPath(new URL('../../sink/sql/duckdb/', import.meta.url));

export interface DuckParams {
  nowMs: number;
  graceMs: number;
  staleAfterMs: number;
  previousWatermarkMs?: number | null;
}

export type DuckRow = Record<string, string | number | boolean | null>;

export async function runDuckDbRollup(bucketDir: string, p: DuckParams): Promise<{ hourly: DuckRow[]; intervals: DuckRow[]; anomalies: DuckRow[]; watermark: number }> {
  const inst = await DuckDBInstance.create(':memory:');
  const conn = await inst.connect();
  try {
    const vars = { now_ms: p.nowMs, grace_ms: p.graceMs, stale_after_ms: p.staleAfterMs };
    for (const [k, v] of Object.entries(vars)) await conn.run(`SET VARIABLE ${k} = ${v}::BIGINT`);
    await conn.run(`SET VARIABLE previous_watermark_ms = ${p.previousWatermarkMs ?? 'NULL'}::BIGINT`);
    const files = fs.readdirSync(SQL_DIR).filter((f) => f.endsWith('.sql')).sort();
    for (const f of files) {
      const sql = fs
        .readFileSync(path.join(SQL_DIR, f), 'utf8')
        .replaceAll('${LEDGER_GLOB}', path.join(bucketDir, 'ledger/*/*/*.ndjson*').replaceAll("'", "''"))
        .replaceAll('${NODES_GLOB}', path.join(bucketDir, 'nodes/*.json').replaceAll("'", "''"));
      await conn.run(sql);
    }
    const read = async (q: string): Promise<DuckRow[]> => (await conn.runAndReadAll(q)).getRowObjectsJson() as DuckRow[];
    const hourly = await read('SELECT * FROM metering_hourly ORDER BY hour_ms, family, resource_id, node, hypervisor, cpu, mem_bytes, storage_bytes');
    const intervals = await read('SELECT * FROM metering_intervals ORDER BY family, resource_id, start_ms, start_event_id');
    const anomalies = await read('SELECT * FROM metering_anomalies ORDER BY t, event_id');
    const [w] = await read('SELECT watermark_ms FROM metering_watermark');
    return { hourly, intervals, anomalies, watermark: Number(w!.watermark_ms) };
  } finally {
    conn.closeSync();
    inst.closeSync();
  }
}
