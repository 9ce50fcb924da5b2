-- BigQuery: external tables over the objects where they lie (no load job, no copy).
-- Replace BUCKET/PREFIX with your shippers' --dest and `metering` with your dataset.
--
-- Layout (sink/layout.ts): gs://BUCKET/PREFIX/ledger/node=<node>/dt=<YYYY-MM-DD>/<segment>[.g<gen>].<start>-<end>.ndjson[.gz]
-- Hive partitioning turns node= and dt= into columns, so `WHERE dt >= ...` prunes objects.
-- The entry's own `node` field is left out of the schema (a partition key may not repeat a data
-- column); the partition value is the same, since each node's lines are uploaded under node=<node>.
-- Plain and gzip objects need separate tables (compression is a per-table option); a view unions them.
-- `metering rollup --engine bigquery` renders this file with the real bucket, prefix and dataset
-- (sink/sql/bigquery/external-tables.ts) and runs it at the start of every run, except CREATE SCHEMA:
-- the dataset must exist (its location is the operator's choice).

CREATE SCHEMA IF NOT EXISTS metering;

CREATE OR REPLACE EXTERNAL TABLE metering.ledger_plain (
  v INT64,
  id STRING,
  writer STRING,
  seq INT64,
  kind STRING,
  vm_id STRING,
  snapshot_id STRING,
  source_snapshot_id STRING,
  reason STRING,
  hypervisor STRING,
  shape STRUCT<cpu INT64, mem_bytes INT64, storage_bytes INT64>,
  emitted_at STRING
)
WITH PARTITION COLUMNS (node STRING, dt DATE)
OPTIONS (
  format = 'NEWLINE_DELIMITED_JSON',
  uris = ['gs://BUCKET/PREFIX/ledger/*.ndjson'],
  hive_partition_uri_prefix = 'gs://BUCKET/PREFIX/ledger',
  require_hive_partition_filter = false,
  ignore_unknown_values = true
);

CREATE OR REPLACE EXTERNAL TABLE metering.ledger_gz (
  v INT64,
  id STRING,
  writer STRING,
  seq INT64,
  kind STRING,
  vm_id STRING,
  snapshot_id STRING,
  source_snapshot_id STRING,
  reason STRING,
  hypervisor STRING,
  shape STRUCT<cpu INT64, mem_bytes INT64, storage_bytes INT64>,
  emitted_at STRING
)
WITH PARTITION COLUMNS (node STRING, dt DATE)
OPTIONS (
  format = 'NEWLINE_DELIMITED_JSON',
  compression = 'GZIP',
  uris = ['gs://BUCKET/PREFIX/ledger/*.ndjson.gz'],
  hive_partition_uri_prefix = 'gs://BUCKET/PREFIX/ledger',
  require_hive_partition_filter = false,
  ignore_unknown_values = true
);

-- Every ledger line as raw text (what `metering rollup --engine bigquery` reads): CSV with a field
-- delimiter (U+0001) that a valid JSON line cannot contain raw, and no quote character, so each line
-- is one STRING column. The consumer then parses and validates it in SQL, reports invalid lines
-- instead of failing the query on them, and digests the line; _FILE_NAME names its object.
-- A query on them must filter on a partition column (require_hive_partition_filter): no accidental
-- scan of the whole ledger.
CREATE OR REPLACE EXTERNAL TABLE metering.ledger_lines_plain (
  line STRING
)
WITH PARTITION COLUMNS (node STRING, dt DATE)
OPTIONS (
  format = 'CSV',
  field_delimiter = '\x01',
  quote = '',
  uris = ['gs://BUCKET/PREFIX/ledger/*.ndjson'],
  hive_partition_uri_prefix = 'gs://BUCKET/PREFIX/ledger',
  require_hive_partition_filter = true
);

CREATE OR REPLACE EXTERNAL TABLE metering.ledger_lines_gz (
  line STRING
)
WITH PARTITION COLUMNS (node STRING, dt DATE)
OPTIONS (
  format = 'CSV',
  compression = 'GZIP',
  field_delimiter = '\x01',
  quote = '',
  uris = ['gs://BUCKET/PREFIX/ledger/*.ndjson.gz'],
  hive_partition_uri_prefix = 'gs://BUCKET/PREFIX/ledger',
  require_hive_partition_filter = true
);

-- Every ledger line, with emitted_at as integer epoch milliseconds (`t`): all arithmetic below is on integers.
CREATE OR REPLACE VIEW metering.ledger AS
SELECT id, node, dt, writer, seq, kind, vm_id, snapshot_id, reason, hypervisor, shape, UNIX_MILLIS(TIMESTAMP(emitted_at)) AS t
FROM (
  SELECT * FROM metering.ledger_plain
  UNION ALL
  SELECT * FROM metering.ledger_gz
);

-- Node progress objects (gs://BUCKET/PREFIX/nodes/<node>.json, one JSON object on one line each).
CREATE OR REPLACE EXTERNAL TABLE metering.node_progress_raw (
  node STRING,
  reported_at STRING,
  complete_through STRING
)
OPTIONS (
  format = 'NEWLINE_DELIMITED_JSON',
  uris = ['gs://BUCKET/PREFIX/nodes/*.json'],
  ignore_unknown_values = true
);

CREATE OR REPLACE VIEW metering.node_progress AS
SELECT node, UNIX_MILLIS(TIMESTAMP(reported_at)) AS reported_ms, UNIX_MILLIS(TIMESTAMP(complete_through)) AS complete_ms
FROM metering.node_progress_raw;
