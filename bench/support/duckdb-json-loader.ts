/**
 * The "twin SQL alone" of issue 11: an entry loader for the DuckDB engine that replaces the
 * TypeScript ledger parser (loadNewObjects: parseLedgerBuffer + the appender) with DuckDB's own
 * JSON reader, so the benchmark can show what the TypeScript around the engine costs. Same engine,
 * same rules, same tables; only how the lines get into them differs.
 *
 * One `INSERT ... SELECT ... FROM read_json([...files])` fills the staging table with exactly the
 * columns of `metering_entries_new` (sink/sql/rules/00_state.sql), then one row per object goes into
 * `metering_objects`. What the TypeScript loader reads from object names (node, segment creation
 * time) comes from the same functions here (parseObjectName via the listing, segmentCreatedAt),
 * handed to SQL as a small VALUES table joined on the file name.
 *
 * Differences from loadNewObjects, all deliberate and none of them in the measured fleet:
 * - it does not validate: a line DuckDB cannot read, or one that misses a NOT NULL column (an
 *   unknown kind has no resource id), fails the whole load with an error. It is a benchmark
 *   loader for a valid fleet, not a way to ingest a real bucket (invalid lines are never recorded);
 * - line_offset is the line's number in its object (0, 1, ...), not its byte offset: the rules only
 *   order by (object, line_offset), and findings would quote the line number;
 * - digest is md5 of the entry rebuilt in serializeEntry's key order (base64, 22 characters, as
 *   digestOf in load-objects.ts): equal to the TypeScript loader's for the recorder's lines, whose
 *   strings need no escaping beyond what JSON.stringify and DuckDB's to_json agree on (ASCII).
 *
 * Local bucket directories only (the objects are files under <bucket>/<name>).
 */
import * as path from 'node:path';
import type { DuckDBConnection } from '@duckdb/node-api';
import { ALL_KINDS, describeKind, segmentCreatedAt } from 'metering-ledger';
import { LocalDirDestination, type Destination } from 'metering-ledger/sink';
import type { EntryLoader, LoadResult } from 'metering-ledger/sink';
import { countQuarantineLines } from '../../sink/consumer/source-reader.js';

/** Where the new entries go: the engine's per-run staging table (merged into metering_entries by the rules). */
export const STAGING_TABLE = 'metering_entries_new';
const OBJECTS_TABLE = 'metering_objects';

/** The columns of metering_entries_new (sink/sql/rules/00_state.sql), in order. */
export const ENTRY_COLUMNS = [
  'run',
  'object',
  'line_offset',
  'obj_node',
  'seg_created_ms',
  'digest',
  'id',
  'entry_node',
  'writer',
  'seq',
  'kind',
  'resource_id',
  'reason',
  'hypervisor',
  'cpu',
  'mem_bytes',
  'storage_bytes',
  't',
  'emitted_at',
] as const;


/** How often the engine called this loader in this process (the twin checks it was really used). */
let calls = 0;
export const jsonLoaderCalls = (): number => calls;

const quote = (s: string): string => `'${s.replaceAll("'", "''")}'`;

/** The fields of a ledger line, as DuckDB should read them (anything else in a line is ignored). */
const JSON_COLUMNS: Record<string, string> = {
  v: 'BIGINT',
  id: 'VARCHAR',
  node: 'VARCHAR',
  writer: 'VARCHAR',
  seq: 'BIGINT',
  kind: 'VARCHAR',
  vm_id: 'VARCHAR',
  snapshot_id: 'VARCHAR',
  source_snapshot_id: 'VARCHAR',
  reason: 'VARCHAR',
  hypervisor: 'VARCHAR',
  shape: 'STRUCT(cpu BIGINT, mem_bytes BIGINT, storage_bytes BIGINT)',
  emitted_at: 'VARCHAR',
};

/** vm_id or snapshot_id by kind, from describeKind (the one definition); an unknown kind gives NULL. */
function resourceIdSql(): string {
  const arms = ALL_KINDS.map((k) => `WHEN ${quote(k)} THEN e.${describeKind(k)!.idField}`);
  return `CASE e.kind ${arms.join(' ')} END`;
}

/** serializeEntry (src/entry.ts) in SQL: the same keys in the same order; absent fields are skipped. */
const SERIALIZED = `concat(
  '{"v":', e.v, ',"id":', to_json(e.id), ',"node":', to_json(e.node), ',"writer":', to_json(e.writer), ',"seq":', e.seq, ',"kind":', to_json(e.kind),
  ',"vm_id":' || to_json(e.vm_id), ',"snapshot_id":' || to_json(e.snapshot_id), ',"source_snapshot_id":' || to_json(e.source_snapshot_id),
  ',"reason":', to_json(e.reason), ',"hypervisor":' || to_json(e.hypervisor),
  ',"shape":{"cpu":', e.shape.cpu, ',"mem_bytes":', e.shape.mem_bytes, ',"storage_bytes":', e.shape.storage_bytes, '},"emitted_at":', to_json(e.emitted_at), '}')`;

function bucketRoot(destination: Destination): string {
  if (destination instanceof LocalDirDestination) return destination.root;
  throw new Error(`the DuckDB JSON loader reads local bucket directories only, not ${destination.description}`);
}

/** Refuses a staging table whose columns are not the ones this loader writes (the schema moved on). */
async function checkStagingTable(connection: DuckDBConnection): Promise<void> {
  const cols = (await connection.runAndReadAll(`SELECT column_name FROM duckdb_columns() WHERE table_name = ${quote(STAGING_TABLE)} ORDER BY column_index`)).getRows().map((r) => String(r[0]));
  if (cols.join(',') !== ENTRY_COLUMNS.join(',')) {
    throw new Error(`duckdb-json-loader: table ${STAGING_TABLE} has columns (${cols.join(', ') || 'none: no such table'}), expected (${ENTRY_COLUMNS.join(', ')}); update STAGING_TABLE or ENTRY_COLUMNS in bench/support/duckdb-json-loader.ts`);
  }
}

export const loadWithDuckDbJson: EntryLoader = async (connection, destination, o) => {
  calls++;
  const root = bucketRoot(destination);
  await checkStagingTable(connection);
  const result: LoadResult = { objectsDone: 0, entries: 0, bad: [] };
  const total = o.ledger.length + o.quarantine.length;
  if (o.ledger.length > 0) {
    const files = o.ledger.map((object) => {
      const seg = segmentCreatedAt(object.parsed.segment);
      return { file: path.join(root, ...object.name.split('/')), object: object.name, node: object.parsed.node, seg };
    });
    const values = files.map((f) => `(${quote(f.file)}, ${quote(f.object)}, ${quote(f.node)}, ${f.seg === undefined ? 'NULL::BIGINT' : String(f.seg)})`).join(',\n');
    const columns = Object.entries(JSON_COLUMNS)
      .map(([k, t]) => `${k}: ${quote(t)}`)
      .join(', ');
    // WITH ORDINALITY numbers the rows in scan order, which for one file is line order.
    const source = `read_json([${files.map((f) => quote(f.file)).join(', ')}], format = 'newline_delimited', columns = {${columns}}, filename = true, hive_partitioning = false, ignore_errors = false)`;
    const sql = `INSERT INTO ${STAGING_TABLE} (${ENTRY_COLUMNS.join(', ')})
      WITH files(filename, object, obj_node, seg_created_ms) AS (VALUES ${values}),
      lines AS (SELECT *, row_number() OVER (PARTITION BY filename ORDER BY ordinality) - 1 AS line_no FROM ${source} WITH ORDINALITY)
      SELECT ${o.run}, f.object, e.line_no, f.obj_node, f.seg_created_ms,
        left(to_base64(unhex(md5(${SERIALIZED}))), 22),
        e.id, e.node, e.writer, e.seq, e.kind, ${resourceIdSql()}, e.reason, e.hypervisor,
        e.shape.cpu, e.shape.mem_bytes, e.shape.storage_bytes, epoch_ms(CAST(e.emitted_at AS TIMESTAMPTZ)), e.emitted_at
      FROM lines AS e JOIN files AS f USING (filename)`;
    try {
      result.entries = (await connection.run(sql)).rowsChanged;
      await connection.run(`INSERT INTO ${OBJECTS_TABLE} (object, cls, run, entries, invalid, quarantined)
        WITH files(object) AS (VALUES ${files.map((f) => `(${quote(f.object)})`).join(', ')}),
        counted AS (SELECT object, COUNT(*) AS n FROM ${STAGING_TABLE} WHERE run = ${o.run} GROUP BY object)
        SELECT f.object, 'ledger', ${o.run}, COALESCE(c.n, 0), 0, 0 FROM files AS f LEFT JOIN counted AS c USING (object)`);
    } catch (err) {
      throw new Error(`duckdb-json-loader: DuckDB could not load the ${files.length} new ledger objects (this benchmark loader skips nothing; a bucket with invalid lines needs the TypeScript loader): ${(err as Error).message}`, { cause: err });
    }
    result.objectsDone = files.length;
    o.onProgress({ phase: 'read', objectsDone: result.objectsDone, objectsTotal: total, entries: result.entries });
  }
  // Quarantine objects only need their line count (none in the benchmark fleet): the engine's own.
  for (const object of o.quarantine) {
    const lines = await countQuarantineLines(destination, object.name);
    if (typeof lines === 'number') await connection.run(`INSERT INTO ${OBJECTS_TABLE} VALUES (${quote(object.name)}, 'quarantine', ${o.run}, 0, 0, ${lines})`);
    else result.bad.push({ object: object.name, error: lines.error });
    o.onProgress({ phase: 'read', objectsDone: ++result.objectsDone, objectsTotal: total, entries: result.entries });
  }
  return result;
};
