-- The resources whose timeline this run changes: those a new or replaced billable kept row belongs
-- to (or belonged to). A resource whose changes are only new events, all later than the last event
-- it folded, goes on from its stored state (the machine's memory and its open interval): the cost
-- grows with the new events, not with its history. Anything else (a late event, a replaced copy, a
-- row that stopped being billable) is folded again from its first event.
CREATE OR REPLACE TABLE {{affected}} AS
WITH changes AS (
  SELECT family, resource_id, t, CASE WHEN existed THEN 0 ELSE 1 END AS added FROM {{kept_changes}} WHERE billable
  UNION ALL
  SELECT old_family AS family, old_resource_id AS resource_id, old_t AS t, 0 AS added FROM {{kept_changes}} WHERE existed AND old_billable
),
per AS (
  SELECT family, resource_id, MIN(t) AS min_t, MIN(added) AS only_added FROM changes GROUP BY family, resource_id
)
SELECT
  p.family,
  p.resource_id,
  (p.only_added = 1 AND (s.resource_id IS NULL OR p.min_t > s.last_t)) AS resume
FROM per AS p
LEFT JOIN {{resource_state}} AS s ON s.family = p.family AND s.resource_id = p.resource_id;

-- The events to fold: a resumed resource's new ones, every billable event of one folded again.
-- Numbered into buckets of about {{$bucket_events}} events (and at most {{$bucket_events}} / 100
-- resources; a resource is never split), folded one
-- bucket at a time so the memory of a fold step stays bounded whatever the history.
CREATE OR REPLACE TABLE {{fold_input}} AS
WITH events AS (
  SELECT c.family, c.resource_id, c.id, c.t, c.obj_node, c.writer, c.seq, c.phase, c.reason, c.hypervisor, c.cpu, c.mem_bytes, c.storage_bytes
  FROM {{kept_changes}} AS c
  JOIN {{affected}} AS a ON a.family = c.family AND a.resource_id = c.resource_id
  WHERE a.resume AND c.billable
  UNION ALL
  SELECT k.family, k.resource_id, k.id, k.t, k.obj_node, k.writer, k.seq, k.phase, k.reason, k.hypervisor, k.cpu, k.mem_bytes, k.storage_bytes
  FROM {{kept}} AS k
  JOIN {{affected}} AS a ON a.family = k.family AND a.resource_id = k.resource_id
  WHERE NOT a.resume AND k.billable
),
sizes AS (
  -- A resource weighs its events plus 100: each group has an aggregate state and a fold result of
  -- its own, so a bucket of many small resources (snapshots) must hold fewer of them.
  SELECT family, resource_id, COUNT(*) + 100 AS n FROM events GROUP BY family, resource_id
),
placed AS (
  SELECT family, resource_id, SUM(n) OVER (ORDER BY family, resource_id ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS before_n FROM sizes
)
SELECT e.*, @idiv(COALESCE(p.before_n, 0), {{$bucket_events}}) AS bucket
FROM events AS e
JOIN placed AS p ON p.family = e.family AND p.resource_id = e.resource_id
-- Stored in bucket order, so a fold step reads only its bucket's row groups (min/max pruning).
ORDER BY bucket;

-- Where each resource of the fold input starts: its stored state and open interval, or a fresh
-- state. With its bucket, stored in bucket order: a fold step reads only its own bucket's starts
-- (min/max pruning), not every affected resource's (a first run affects them all).
CREATE OR REPLACE TABLE {{fold_start}} AS
SELECT
  a.family,
  a.resource_id,
  p.bucket,
  @struct(
    CASE WHEN a.resume AND o.resource_id IS NOT NULL THEN @struct(
      CAST(o.start_ms AS {{FLOAT}}) AS start_ms, o.node AS node, o.hypervisor AS hypervisor, CAST(o.cpu AS {{FLOAT}}) AS cpu,
      CAST(o.mem_bytes AS {{FLOAT}}) AS mem_bytes, CAST(o.storage_bytes AS {{FLOAT}}) AS storage_bytes, o.open_reason AS open_reason,
      o.baseline AS baseline, o.start_event_id AS start_event_id, CAST(NULL AS {{FLOAT}}) AS end_ms, CAST(NULL AS STRING) AS close_reason,
      CAST(NULL AS STRING) AS end_event_id, CAST(o.last_evidence_ms AS {{FLOAT}}) AS last_evidence_ms
    ) END AS open,
    CASE WHEN a.resume THEN s.handed_from END AS handed_from,
    COALESCE(a.resume AND s.last_was_stop, FALSE) AS last_was_stop
  ) AS state
FROM {{affected}} AS a
JOIN (SELECT family, resource_id, MIN(bucket) AS bucket FROM {{fold_input}} GROUP BY family, resource_id) AS p
  ON p.family = a.family AND p.resource_id = a.resource_id
LEFT JOIN {{resource_state}} AS s ON s.family = a.family AND s.resource_id = a.resource_id
LEFT JOIN {{fold_intervals}} AS o ON o.family = a.family AND o.resource_id = a.resource_id AND o.end_ms IS NULL
ORDER BY p.bucket;

-- What the fold steps produce, as metering_fold returns it (sink/sql/fold-udf.ts, FOLD_ROW_FIELDS):
-- flat rows of a kind (interval, anomaly, or the state a resource ends in), appended bucket by
-- bucket by 40_fold.bucket.sql and split by 42_fold_results.sql. One table appended to by one
-- statement per step, not tables per step: DuckDB keeps what a table created and dropped within the
-- run's transaction held in memory until the commit, so tables per step grew a run's memory with
-- its number of steps until it failed. Flat, so no value holds a resource's whole history.
CREATE OR REPLACE TABLE {{fold_rows}} (
  kind STRING NOT NULL,
  family STRING NOT NULL,
  resource_id STRING NOT NULL,
  last_t BIGINT NOT NULL,
  node STRING,
  hypervisor STRING,
  cpu BIGINT,
  mem_bytes BIGINT,
  storage_bytes BIGINT,
  start_ms BIGINT,
  end_ms BIGINT,
  open_reason STRING,
  close_reason STRING,
  baseline BOOL,
  start_event_id STRING,
  end_event_id STRING,
  last_evidence_ms BIGINT,
  anomaly_type STRING,
  event_id STRING,
  t BIGINT,
  handed_from STRING,
  last_was_stop BOOL
);

-- How many fold steps this run takes (read by the engine).
CREATE OR REPLACE TABLE {{fold_buckets}} AS
SELECT COALESCE(MAX(bucket) + 1, 0) AS buckets FROM {{fold_input}};
