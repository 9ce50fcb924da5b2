-- BigQuery: external tables over the outputs of `metering rollup` (the DuckDB engine), once its
-- --out directory is copied to GCS (docs/consumer.md, "Outputs"), read where they lie.
-- Replace gs://BUCKET/OUT with where you copied --out, and `metering_outputs` with your dataset.
-- Not the dataset of `metering rollup --engine bigquery`: its native tables hourly, intervals and
-- revisions would be replaced by these.
--
-- Layout (sink/consumer/outputs/partitions.ts):
--   OUT/hourly/dt=YYYY-MM-DD/hourly.ndjson         the rows of that UTC day's hours
--   OUT/intervals/dt=YYYY-MM-DD/intervals.ndjson   intervals by the UTC day they start
--   OUT/revisions/run=NNNNNN/revisions.ndjson      the revisions one run emitted (append-only)
-- Hive partitioning turns dt= and run= into columns, so `WHERE dt >= ...` reads only those days.
-- The URIs end in the file name's extension: a partition being rewritten holds a temp file
-- (.hourly.ndjson.<pid>.<hex>.tmp) for a moment, which must not be read.
--
-- Columns are the rows' JSON fields and types (HourlyRow, UsageInterval in sink/consumer/types.ts;
-- test/output-tables.test.ts checks them against real outputs). Times (hour, start, end) are ISO
-- 8601 UTC strings with milliseconds, as written: TIMESTAMP(hour) in a query. Numbers are integers;
-- usage is cpu * ms and bytes * ms, and a product can outgrow INT64 (2.5 TiB for an hour does), so
-- multiply in BIGNUMERIC: CAST(storage_bytes AS BIGNUMERIC) * ms.

CREATE SCHEMA IF NOT EXISTS metering_outputs;

-- One row per (hour, family, resource_id, node, hypervisor, shape), in its latest version.
CREATE OR REPLACE EXTERNAL TABLE metering_outputs.hourly (
  hour STRING,
  family STRING,
  resource_id STRING,
  node STRING,
  hypervisor STRING,
  cpu INT64,
  mem_bytes INT64,
  storage_bytes INT64,
  ms INT64,
  final BOOL,
  version INT64,
  revises INT64,
  previous_ms INT64
)
WITH PARTITION COLUMNS (dt DATE)
OPTIONS (
  format = 'NEWLINE_DELIMITED_JSON',
  uris = ['gs://BUCKET/OUT/hourly/*.ndjson'],
  hive_partition_uri_prefix = 'gs://BUCKET/OUT/hourly',
  require_hive_partition_filter = false
);

-- One row per interval, in the partition of the day it starts.
CREATE OR REPLACE EXTERNAL TABLE metering_outputs.intervals (
  family STRING,
  resource_id STRING,
  node STRING,
  hypervisor STRING,
  shape STRUCT<cpu INT64, mem_bytes INT64, storage_bytes INT64>,
  start STRING,
  `end` STRING,
  open_reason STRING,
  close_reason STRING,
  baseline BOOL,
  unconfirmed_end BOOL,
  start_event_id STRING,
  end_event_id STRING
)
WITH PARTITION COLUMNS (dt DATE)
OPTIONS (
  format = 'NEWLINE_DELIMITED_JSON',
  uris = ['gs://BUCKET/OUT/intervals/*.ndjson'],
  hive_partition_uri_prefix = 'gs://BUCKET/OUT/intervals',
  require_hive_partition_filter = false
);

-- Every revision ever emitted (hourly rows with revises set), partitioned by the run that emitted it.
CREATE OR REPLACE EXTERNAL TABLE metering_outputs.revisions (
  hour STRING,
  family STRING,
  resource_id STRING,
  node STRING,
  hypervisor STRING,
  cpu INT64,
  mem_bytes INT64,
  storage_bytes INT64,
  ms INT64,
  final BOOL,
  version INT64,
  revises INT64,
  previous_ms INT64
)
WITH PARTITION COLUMNS (run INT64)
OPTIONS (
  format = 'NEWLINE_DELIMITED_JSON',
  uris = ['gs://BUCKET/OUT/revisions/*.ndjson'],
  hive_partition_uri_prefix = 'gs://BUCKET/OUT/revisions',
  require_hive_partition_filter = false
);

-- PARQUET variant (outputs written with --format parquet): the same tables and columns (the
-- Parquet files carry these types: strings, INT64, BOOLEAN, a struct for shape), another format
-- and extension. Uncomment it instead of the statements above.
-- BEGIN PARQUET
-- CREATE OR REPLACE EXTERNAL TABLE metering_outputs.hourly (
--   hour STRING,
--   family STRING,
--   resource_id STRING,
--   node STRING,
--   hypervisor STRING,
--   cpu INT64,
--   mem_bytes INT64,
--   storage_bytes INT64,
--   ms INT64,
--   final BOOL,
--   version INT64,
--   revises INT64,
--   previous_ms INT64
-- )
-- WITH PARTITION COLUMNS (dt DATE)
-- OPTIONS (
--   format = 'PARQUET',
--   uris = ['gs://BUCKET/OUT/hourly/*.parquet'],
--   hive_partition_uri_prefix = 'gs://BUCKET/OUT/hourly',
--   require_hive_partition_filter = false
-- );
--
-- CREATE OR REPLACE EXTERNAL TABLE metering_outputs.intervals (
--   family STRING,
--   resource_id STRING,
--   node STRING,
--   hypervisor STRING,
--   shape STRUCT<cpu INT64, mem_bytes INT64, storage_bytes INT64>,
--   start STRING,
--   `end` STRING,
--   open_reason STRING,
--   close_reason STRING,
--   baseline BOOL,
--   unconfirmed_end BOOL,
--   start_event_id STRING,
--   end_event_id STRING
-- )
-- WITH PARTITION COLUMNS (dt DATE)
-- OPTIONS (
--   format = 'PARQUET',
--   uris = ['gs://BUCKET/OUT/intervals/*.parquet'],
--   hive_partition_uri_prefix = 'gs://BUCKET/OUT/intervals',
--   require_hive_partition_filter = false
-- );
--
-- CREATE OR REPLACE EXTERNAL TABLE metering_outputs.revisions (
--   hour STRING,
--   family STRING,
--   resource_id STRING,
--   node STRING,
--   hypervisor STRING,
--   cpu INT64,
--   mem_bytes INT64,
--   storage_bytes INT64,
--   ms INT64,
--   final BOOL,
--   version INT64,
--   revises INT64,
--   previous_ms INT64
-- )
-- WITH PARTITION COLUMNS (run INT64)
-- OPTIONS (
--   format = 'PARQUET',
--   uris = ['gs://BUCKET/OUT/revisions/*.parquet'],
--   hive_partition_uri_prefix = 'gs://BUCKET/OUT/revisions',
--   require_hive_partition_filter = false
-- );
-- END PARQUET
