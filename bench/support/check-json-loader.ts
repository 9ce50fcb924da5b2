/**
 * Self-check of the "twin SQL alone" loader: loads the same objects once with the engine's
 * TypeScript loader (loadNewObjects) and once with DuckDB's JSON reader (duckdb-json-loader.ts)
 * into tables created from the rules' own 00_state.sql, and requires identical rows: every column,
 * with line_offset compared as the line's rank in its object (byte offset vs line number), and the
 * same metering_objects rows. Exits 1 with the first differences otherwise.
 *
 *   node --import tsx bench/support/check-json-loader.ts [--bucket DIR]
 *
 * Without --bucket it writes a small fleet of its own (2 nodes, snapshots included, one object
 * also stored gzipped, so the copy is a duplicate of every id in it). bench/consumer.ts runs it on
 * the first objects of its fleet before measuring.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { gzipSync } from 'node:zlib';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { pino } from 'pino';
import { LocalDirDestination, renderRules } from 'metering-ledger/sink';
import { loadNewObjects, type LoadOptions } from '../../sink/consumer/engine/load-objects.js';
import { listSource } from '../../sink/consumer/source-reader.js';
import { ledgerSegments } from './backlog.js';
import { ENTRY_COLUMNS, STAGING_TABLE, loadWithDuckDbJson } from './duckdb-json-loader.js';
import { cutSegment } from './node-objects.js';
import { writeWorkload } from './workload.js';

/** A small fleet: `nodes` nodes, `entries` each, a few objects per node, one object also gzipped. */
async function smallFleet(bucket: string, nodes = 2, entries = 6000): Promise<void> {
  for (let n = 0; n < nodes; n++) {
    const node = `node-${String(n).padStart(2, '0')}`;
    const ledger = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-check-ledger-'));
    try {
      await writeWorkload({ dir: ledger, node, entries, vms: 50, stepMs: 60_000, keepSnapshots: 5 });
      for (const seg of ledgerSegments(ledger).files) {
        const objects = cutSegment(bucket, node, seg, 256 * 1024);
        if (n === 0 && objects[0]) {
          const file = path.join(bucket, ...objects[0].name.split('/'));
          fs.writeFileSync(`${file}.gz`, gzipSync(fs.readFileSync(file)));
        }
      }
    } finally {
      fs.rmSync(ledger, { recursive: true, force: true });
    }
  }
}

async function count(c: DuckDBConnection, sql: string): Promise<number> {
  return Number((await c.runAndReadAll(sql)).getRows()[0]![0]);
}

/** The entries with line_offset replaced by the line's rank in its object. */
const ranked = (table: string): string =>
  `SELECT ${ENTRY_COLUMNS.map((c) => (c === 'line_offset' ? 'row_number() OVER (PARTITION BY object ORDER BY line_offset) AS line_rank' : c)).join(', ')} FROM ${table}`;

export interface CheckResult {
  entries: number;
  objects: number;
  problems: string[];
}

export async function checkJsonLoader(bucket: string): Promise<CheckResult> {
  const destination = new LocalDirDestination(bucket);
  const listing = await listSource(destination, '');
  const instance = await DuckDBInstance.create(':memory:');
  const c = await instance.connect();
  try {
    const schema = renderRules('duckdb', { now_ms: Date.now(), grace_ms: 0, stale_after_ms: 0, retain_ms: 0, max_skew_ms: 0, run: 1 }).filter((s) => s.file.startsWith('00_'));
    for (const s of schema) await c.run(s.sql);
    const options: LoadOptions = { run: 1, ledger: listing.ledger, quarantine: listing.quarantine, concurrency: 4, log: pino({ level: 'silent' }), onProgress: () => {} };
    const ts = await loadNewObjects(c, destination, options);
    await c.run(`CREATE TABLE check_ts_entries AS SELECT * FROM ${STAGING_TABLE}; DELETE FROM ${STAGING_TABLE}`);
    await c.run('CREATE TABLE check_ts_objects AS SELECT * FROM metering_objects; DELETE FROM metering_objects');
    const json = await loadWithDuckDbJson(c, destination, options);

    const problems: string[] = [];
    if (ts.bad.length || ts.entries === 0) problems.push(`the TypeScript loader read ${ts.entries} entries, bad objects: ${JSON.stringify(ts.bad)}`);
    for (const k of ['entries', 'objectsDone'] as const) if (ts[k] !== json[k]) problems.push(`${k}: TypeScript ${ts[k]}, DuckDB JSON ${json[k]}`);
    const diff = async (what: string, a: string, b: string): Promise<void> => {
      const n = await count(c, `SELECT COUNT(*) FROM (${a} EXCEPT ALL ${b})`);
      if (n === 0) return;
      const sample = (await c.runAndReadAll(`${a} EXCEPT ALL ${b} LIMIT 3`)).getRowObjectsJson();
      problems.push(`${what}: ${n} rows, e.g. ${JSON.stringify(sample)}`);
    };
    await diff('entries only the TypeScript loader has', ranked('check_ts_entries'), ranked(STAGING_TABLE));
    await diff('entries only the DuckDB JSON loader has', ranked(STAGING_TABLE), ranked('check_ts_entries'));
    await diff('objects only the TypeScript loader has', 'SELECT * FROM check_ts_objects', 'SELECT * FROM metering_objects');
    await diff('objects only the DuckDB JSON loader has', 'SELECT * FROM metering_objects', 'SELECT * FROM check_ts_objects');
    return { entries: ts.entries, objects: ts.objectsDone, problems };
  } finally {
    c.closeSync();
    instance.closeSync();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({ options: { bucket: { type: 'string' } } });
  const own = values.bucket ? undefined : fs.mkdtempSync(path.join(os.tmpdir(), 'bench-check-json-'));
  try {
    const bucket = values.bucket ?? path.join(own!, 'bucket');
    if (own) await smallFleet(bucket);
    const r = await checkJsonLoader(bucket);
    if (r.problems.length) {
      console.error(`DuckDB JSON loader differs from loadNewObjects over ${r.entries} entries in ${r.objects} objects:\n- ${r.problems.join('\n- ')}`);
      process.exitCode = 1;
    } else {
      console.log(`DuckDB JSON loader self-check: ${r.entries} entries in ${r.objects} objects, every row identical to loadNewObjects' (line_offset as rank in the object)`);
    }
  } finally {
    if (own) fs.rmSync(own, { recursive: true, force: true });
  }
}
