-- The engine's state: everything a run needs from earlier runs, as tables. Created once; each run
-- changes only the rows its new entries can change (docs/consumer.md, "The incremental engine"). Names are tokens: {{entries}} is `metering_entries` in
-- DuckDB and `metering.entries` in BigQuery (sink/sql/render.ts).

-- Every copy of every valid ledger line ever read: where it was read, in which run, and its digest.
-- Only what later copies of the same id are judged against (the kept copy, its arrival and first
-- sighting, conflicting duplicates); the kept copy itself is whole in {{kept}}. A copy that is not
-- kept never becomes the kept one again: that is the smallest (object, offset) of all copies.
CREATE TABLE IF NOT EXISTS {{entries}} (
  run BIGINT NOT NULL,            -- the run that read it (arrival: the first run that read any copy of its id)
  object STRING NOT NULL,         -- ledger object name
  line_offset BIGINT NOT NULL,    -- byte offset of the line in the (decompressed) object
  digest STRING NOT NULL,         -- digest of the serialized entry: copies with another digest conflict
  id STRING NOT NULL              -- (the order of a migrated v2 table)
);

-- The copies this run read, whole (loaded before the rules run, judged by 20_kept.sql, then only
-- their columns of {{entries}} are kept).
CREATE TABLE IF NOT EXISTS {{entries_new}} (
  run BIGINT NOT NULL,
  object STRING NOT NULL,
  line_offset BIGINT NOT NULL,
  obj_node STRING NOT NULL,       -- the object's node= partition: the node the entry is billed on
  seg_created_ms BIGINT,          -- creation time of the segment, from the object name (clock-skew rule)
  digest STRING NOT NULL,
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
  previous_watermark_ms BIGINT,   -- the previous run's watermark (null on a first run): it never moves back
  arrival_watermark_ms BIGINT,    -- the same, for the ids this run reads first (null when it re-reads, see next_rereads)
  arrival_horizon_ms BIGINT,      -- the previous run's watermark - retain, likewise
  watermark_ms BIGINT,
  watermark_computed_ms BIGINT,
  horizon_ms BIGINT,
  next_rereads BOOL               -- the next run re-reads what an older consumer read (a migrated state, run 0): no late verdicts
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

-- One row per id: its kept copy (smallest object, offset) and the verdicts fixed when it arrived.
CREATE TABLE IF NOT EXISTS {{kept}} (
  run BIGINT NOT NULL,
  object STRING NOT NULL,
  line_offset BIGINT NOT NULL,
  obj_node STRING NOT NULL,
  seg_created_ms BIGINT,
  digest STRING NOT NULL,
  id STRING NOT NULL,
  entry_node STRING NOT NULL,
  writer STRING NOT NULL,
  seq BIGINT NOT NULL,
  kind STRING NOT NULL,
  resource_id STRING NOT NULL,
  reason STRING NOT NULL,
  hypervisor STRING,
  cpu BIGINT NOT NULL,
  mem_bytes BIGINT NOT NULL,
  storage_bytes BIGINT NOT NULL,
  t BIGINT NOT NULL,
  emitted_at STRING NOT NULL,
  copies BIGINT NOT NULL,
  arrival_run BIGINT NOT NULL,
  phase STRING NOT NULL,
  family STRING NOT NULL,
  first_object STRING NOT NULL,
  first_offset BIGINT NOT NULL,
  node_mismatch BOOL NOT NULL,
  clock_skew BOOL NOT NULL,
  too_late BOOL NOT NULL,
  late BOOL NOT NULL,
  billable BOOL NOT NULL
);

-- Entry findings, about one copy each (writer and seq: which seq_conflicts group it belongs to).
CREATE TABLE IF NOT EXISTS {{findings}} (
  finding STRING NOT NULL,
  object STRING NOT NULL,
  line_offset BIGINT NOT NULL,
  id STRING NOT NULL,
  node STRING NOT NULL,
  emitted_at STRING NOT NULL,
  writer STRING NOT NULL,
  seq BIGINT NOT NULL
);

-- The node of each writer: that of its entry read first (id: that entry).
CREATE TABLE IF NOT EXISTS {{writer_nodes}} (
  writer STRING NOT NULL,
  node STRING NOT NULL,
  arrival_run BIGINT NOT NULL,
  first_object STRING NOT NULL,
  first_offset BIGINT NOT NULL,
  id STRING NOT NULL
);

-- Each writer's kept seq numbers as ranges [lo, hi]: what loss detection compares with.
CREATE TABLE IF NOT EXISTS {{seq_ranges}} (
  writer STRING NOT NULL,
  lo BIGINT NOT NULL,
  hi BIGINT NOT NULL
);

-- Per resource, where its fold stopped: the last event time folded and the machine's memory. The
-- open interval, if any, is the resource's row in fold_intervals with end_ms null.
CREATE TABLE IF NOT EXISTS {{resource_state}} (
  family STRING NOT NULL,
  resource_id STRING NOT NULL,
  last_t BIGINT NOT NULL,
  handed_from STRING,
  last_was_stop BOOL NOT NULL
);

-- The fold's intervals (before a stale node's derived end) and anomalies, per resource.
CREATE TABLE IF NOT EXISTS {{fold_intervals}} (
  family STRING NOT NULL,
  resource_id STRING NOT NULL,
  node STRING NOT NULL,
  hypervisor STRING,
  cpu BIGINT NOT NULL,
  mem_bytes BIGINT NOT NULL,
  storage_bytes BIGINT NOT NULL,
  start_ms BIGINT NOT NULL,
  end_ms BIGINT,
  open_reason STRING NOT NULL,
  close_reason STRING,
  baseline BOOL NOT NULL,
  start_event_id STRING NOT NULL,
  end_event_id STRING,
  last_evidence_ms BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS {{anomalies}} (
  family STRING NOT NULL,
  resource_id STRING NOT NULL,
  anomaly_type STRING NOT NULL,
  event_id STRING NOT NULL,
  node STRING NOT NULL,
  t BIGINT NOT NULL
);

-- Intervals as billed and published (intervals/ outputs).
CREATE TABLE IF NOT EXISTS {{intervals}} (
  family STRING NOT NULL,
  resource_id STRING NOT NULL,
  node STRING NOT NULL,
  hypervisor STRING,
  cpu BIGINT NOT NULL,
  mem_bytes BIGINT NOT NULL,
  storage_bytes BIGINT NOT NULL,
  start_ms BIGINT NOT NULL,
  end_ms BIGINT,
  open_reason STRING NOT NULL,
  close_reason STRING,
  baseline BOOL NOT NULL,
  unconfirmed_end BOOL NOT NULL,
  start_event_id STRING NOT NULL,
  end_event_id STRING
);

-- Every hourly row as published (hourly/ outputs): final rows with their versions, provisional rows (version 0).
CREATE TABLE IF NOT EXISTS {{hourly}} (
  hour_ms BIGINT NOT NULL,
  family STRING NOT NULL,
  resource_id STRING NOT NULL,
  node STRING NOT NULL,
  hypervisor STRING,
  cpu BIGINT NOT NULL,
  mem_bytes BIGINT NOT NULL,
  storage_bytes BIGINT NOT NULL,
  ms BIGINT NOT NULL,
  final BOOL NOT NULL,
  version BIGINT NOT NULL,
  revises BIGINT,
  previous_ms BIGINT
);

-- Resources whose billed time changed in final hours while the watermark was held (a chunk of a
-- backlog with more to come): such a run leaves final hours alone, and the first run that does not
-- hold recomputes them from here, so a final hour is revised once, for what the whole backlog says.
CREATE TABLE IF NOT EXISTS {{pending_dirty}} (
  family STRING NOT NULL,
  resource_id STRING NOT NULL,
  dirty_hour BIGINT NOT NULL
);

-- The UTC days (epoch ms of midnight) whose output partitions this run changed.
CREATE TABLE IF NOT EXISTS {{changed_days}} (
  output STRING NOT NULL,          -- 'hourly' or 'intervals'
  day_ms BIGINT NOT NULL
);

-- A run starts from nothing staged.
DELETE FROM {{entries_new}} WHERE TRUE;

DELETE FROM {{changed_days}} WHERE TRUE;

-- A scratch table the rules no longer write (each id's count of copies; 20_kept.sql ranks only ids
-- of several copies now, in {{copy_ranks}}): a state written before is left lighter.
DROP TABLE IF EXISTS {{copy_counts}};
