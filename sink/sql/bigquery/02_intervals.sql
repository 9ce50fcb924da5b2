-- BigQuery: usage intervals from the ledger (twin: sink/sql/duckdb/02_intervals.sql, tested
-- against the TypeScript consumer by test/consumer-duckdb.test.ts). Run as one script.
-- Same rules as `metering rollup` (docs/consumer.md) except revisions and the retention horizon:
-- SQL has no memory of what was published, so it recomputes current values; keep versioning
-- with `metering rollup`, or diff each run's final rows against the previous run's.

DECLARE now_ms INT64 DEFAULT UNIX_MILLIS(CURRENT_TIMESTAMP());   -- the one trusted clock
DECLARE grace_ms INT64 DEFAULT 5 * 60 * 1000;                    -- --grace
DECLARE stale_after_ms INT64 DEFAULT 6 * 3600 * 1000;            -- --stale-after
DECLARE previous_watermark_ms INT64 DEFAULT NULL;                -- last published watermark: it never moves back

-- 1. De-duplicate by id; family, phase and resource id from the kind.
CREATE OR REPLACE TABLE metering.events AS
SELECT * EXCEPT (copy) FROM (
  SELECT
    id, node, writer, seq, kind, reason, hypervisor,
    shape.cpu AS cpu, shape.mem_bytes AS mem_bytes, shape.storage_bytes AS storage_bytes, t,
    REGEXP_EXTRACT(kind, r'^(.*)\.[a-z]+$') AS family,
    REGEXP_EXTRACT(kind, r'\.([a-z]+)$') AS phase,
    IF(STARTS_WITH(kind, 'snap.'), snapshot_id, vm_id) AS resource_id,
    ROW_NUMBER() OVER (PARTITION BY id ORDER BY node, writer, seq) AS copy
  FROM metering.ledger
) WHERE copy = 1;

-- 2. The state machine as window functions. The state after an event depends only on its phase
--    (a stop leaves nothing open; a start or baseline leaves something open), so:
--    grp = number of stops before the event: each group is [start|running ...] [stop]?
--    the first event of a group opens an interval unless it is a stop; the group's stop closes it.
CREATE OR REPLACE TABLE metering.steps AS
SELECT
  e.*,
  LAG(phase) OVER (PARTITION BY family, resource_id ORDER BY t, writer, seq, id) AS prev_phase,
  COALESCE(SUM(IF(phase = 'stop', 1, 0)) OVER (
    PARTITION BY family, resource_id ORDER BY t, writer, seq, id ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS grp
FROM metering.events e;

CREATE OR REPLACE TABLE metering.steps_ranked AS
SELECT
  s.*,
  ROW_NUMBER() OVER (PARTITION BY family, resource_id, grp ORDER BY t, writer, seq, id) AS pos,
  ROW_NUMBER() OVER (PARTITION BY family, resource_id, grp, phase = 'stop' ORDER BY t DESC, writer DESC, seq DESC, id DESC) AS rpos
FROM metering.steps s;

-- Reported, never billed.
CREATE OR REPLACE TABLE metering.anomalies AS
SELECT
  CASE
    WHEN phase = 'start' THEN 'duplicate_start'
    WHEN prev_phase IS NULL THEN 'orphan_stop'
    ELSE 'duplicate_stop'
  END AS type,
  family, resource_id, id AS event_id, node, t
FROM metering.steps
WHERE (phase = 'start' AND prev_phase IS NOT NULL AND prev_phase <> 'stop')
   OR (phase = 'stop' AND (prev_phase IS NULL OR prev_phase = 'stop'));

-- 3. Nodes and the watermark: min over live nodes of complete_through, capped by the clock, minus grace.
CREATE OR REPLACE TABLE metering.nodes AS
WITH names AS (SELECT DISTINCT node FROM metering.events UNION DISTINCT SELECT node FROM metering.node_progress)
SELECT
  n.node, p.reported_ms, p.complete_ms,
  (p.reported_ms IS NULL OR now_ms - p.reported_ms > stale_after_ms) AS stale
FROM names n LEFT JOIN metering.node_progress p USING (node);

CREATE OR REPLACE TABLE metering.watermark AS
SELECT GREATEST(computed, COALESCE(previous_watermark_ms, computed)) AS watermark_ms, computed AS computed_ms
FROM (
  SELECT LEAST(now_ms, COALESCE(MIN(IF(NOT stale, complete_ms, NULL)), now_ms)) - grace_ms AS computed
  FROM metering.nodes
);

-- 4. Intervals. Each bills the shape of its opening event. An open interval whose latest evidence
--    came from a stale node ends at that evidence or the node's complete_through, whichever is later
--    (capped by the clock), flagged unconfirmed_end.
CREATE OR REPLACE TABLE metering.intervals AS
WITH openers AS (SELECT * FROM metering.steps_ranked WHERE pos = 1 AND phase <> 'stop'),
closers AS (SELECT family, resource_id, grp, t AS end_t, reason AS stop_reason, id AS end_event_id FROM metering.steps_ranked WHERE phase = 'stop' AND pos > 1),
evidence AS (SELECT family, resource_id, grp, t AS last_t, node AS last_node FROM metering.steps_ranked WHERE phase <> 'stop' AND rpos = 1)
SELECT
  o.family, o.resource_id, o.node, o.hypervisor, o.cpu, o.mem_bytes, o.storage_bytes,
  o.t AS start_ms,
  CASE
    WHEN c.end_t IS NOT NULL THEN c.end_t
    WHEN COALESCE(n.stale, FALSE) AND n.complete_ms IS NULL THEN ev.last_t
    WHEN COALESCE(n.stale, FALSE) THEN GREATEST(ev.last_t, LEAST(n.complete_ms, now_ms))
  END AS end_ms,
  o.reason AS open_reason,
  CASE WHEN c.end_t IS NOT NULL THEN c.stop_reason WHEN COALESCE(n.stale, FALSE) THEN 'stale-node' END AS close_reason,
  o.phase = 'running' AS baseline,
  c.end_t IS NULL AND COALESCE(n.stale, FALSE) AS unconfirmed_end,
  o.id AS start_event_id,
  c.end_event_id
FROM openers o
JOIN evidence ev USING (family, resource_id, grp)
LEFT JOIN closers c USING (family, resource_id, grp)
LEFT JOIN metering.nodes n ON n.node = ev.last_node;
