-- The engine's state: everything a run needs from earlier runs, as tables. Created once; every
-- later statement recomputes from them. Names are tokens: {{entries}} is `metering_entries` in
-- DuckDB and `metering.entries` in BigQuery (sink/sql/render.ts).

-- Every valid ledger line ever read (every copy), with where it was read and in which run.
CREATE TABLE IF NOT EXISTS {{entries}} (
  run BIGINT NOT NULL,            -- the run that read it (arrival: the first run that read any copy of its id)
  object STRING NOT NULL,         -- ledger object name
  line_offset BIGINT NOT NULL,    -- byte offset of the line in the (decompressed) object
  obj_node STRING NOT NULL,       -- the object's node= partition: the node the entry is billed on
  seg_created_ms BIGINT,          -- creation time of the segment, from the object name (clock-skew rule)
  digest STRING NOT NULL,         -- digest of the serialized entry: copies with another digest conflict
  id STRING NOT NULL,
  entry_node STRING NOT NULL,     -- the entry's own node field (a mismatch is reported, not billed differently)
  writer STRING NOT NULL,
  seq BIGINT NOT NULL,
  kind STRING NOT NULL,
  resource_id STRING NOT NULL,    -- vm_id or snapshot_id, by kind
  reason STRING NOT NULL,
  hypervisor STRING,
  cpu BIGINT NOT NULL,
  mem_bytes BIGINT NOT NULL,
  storage_bytes BIGINT NOT NULL,
  t BIGINT NOT NULL,              -- emitted_at, epoch ms
  emitted_at STRING NOT NULL      -- as written (findings quote it)
);

-- One row per run: what it stood on (arrival facts for the ids it saw first) and what it decided.
CREATE TABLE IF NOT EXISTS {{runs}} (
  run BIGINT NOT NULL,
  now_ms BIGINT NOT NULL,
  arrival_watermark_ms BIGINT,    -- the previous run's watermark (null on a first run)
  arrival_horizon_ms BIGINT,      -- the previous run's watermark - retain (null on a first run)
  watermark_ms BIGINT,
  watermark_computed_ms BIGINT,
  horizon_ms BIGINT
);

-- Objects read. A read that failed is not recorded, so the object is retried (and reported) next run.
CREATE TABLE IF NOT EXISTS {{objects}} (
  object STRING NOT NULL,
  cls STRING NOT NULL,            -- 'ledger' or 'quarantine'
  run BIGINT NOT NULL,
  entries BIGINT NOT NULL,        -- valid entries (ledger)
  invalid BIGINT NOT NULL,        -- invalid lines (ledger)
  quarantined BIGINT NOT NULL     -- lines set aside by the shipper (quarantine)
);

CREATE TABLE IF NOT EXISTS {{invalid_lines}} (
  run BIGINT NOT NULL,
  object STRING NOT NULL,
  line_offset BIGINT NOT NULL,
  length BIGINT NOT NULL,
  reason STRING NOT NULL
);

-- This run's view of each listed progress object (replaced every run).
CREATE TABLE IF NOT EXISTS {{node_reads}} (
  node STRING NOT NULL,
  listed_updated_ms BIGINT,       -- the destination's time of the object's last write (trusted clock)
  read_ok BOOL NOT NULL,
  read_error STRING,
  reported_ms BIGINT,
  complete_ms BIGINT,
  backlog_bytes BIGINT
);

-- Per writer, the last seq its node's shipper says it shipped (this run's reads; replaced every run).
CREATE TABLE IF NOT EXISTS {{writer_progress}} (
  node STRING NOT NULL,
  writer STRING NOT NULL,
  last_seq BIGINT NOT NULL
);

-- The last usable progress of each node, from earlier runs (fail closed on a read error).
CREATE TABLE IF NOT EXISTS {{node_known}} (
  node STRING NOT NULL,
  reported_ms BIGINT NOT NULL,
  complete_ms BIGINT NOT NULL,
  backlog_bytes BIGINT,
  updated_ms BIGINT NOT NULL
);

-- Every final hourly row as last published (versions): what a change is a revision of.
CREATE TABLE IF NOT EXISTS {{published}} (
  hour_ms BIGINT NOT NULL,
  family STRING NOT NULL,
  resource_id STRING NOT NULL,
  node STRING NOT NULL,
  hypervisor STRING,
  cpu BIGINT NOT NULL,
  mem_bytes BIGINT NOT NULL,
  storage_bytes BIGINT NOT NULL,
  ms BIGINT NOT NULL,
  version BIGINT NOT NULL,
  revises BIGINT,
  previous_ms BIGINT
);

-- Every revision ever emitted, append-only, in order (run, ord).
CREATE TABLE IF NOT EXISTS {{revisions}} (
  run BIGINT NOT NULL,
  ord BIGINT NOT NULL,
  hour_ms BIGINT NOT NULL,
  family STRING NOT NULL,
  resource_id STRING NOT NULL,
  node STRING NOT NULL,
  hypervisor STRING,
  cpu BIGINT NOT NULL,
  mem_bytes BIGINT NOT NULL,
  storage_bytes BIGINT NOT NULL,
  ms BIGINT NOT NULL,
  version BIGINT NOT NULL,
  revises BIGINT,
  previous_ms BIGINT
);
