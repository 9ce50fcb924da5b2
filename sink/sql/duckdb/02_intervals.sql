-- DuckDB twin of sink/sql/bigquery/02_intervals.sql. Parameters (SET VARIABLE before running):
--   now_ms          the consumer's clock (epoch ms), the one trusted clock
--   grace_ms        subtracted from the watermark
--   stale_after_ms  a node whose last report is older stops holding the watermark
--   previous_watermark_ms  the last published watermark (NULL on a first run); it never moves back
-- Same rules as the TypeScript consumer (docs/consumer.md), except revisions: SQL has no memory of
-- what was published, so it computes the current values; versioning stays with `metering rollup`.

-- 1. De-duplicate by id; family, phase and resource id from the kind.
CREATE OR REPLACE TABLE metering_events AS
SELECT * EXCLUDE (copy) FROM (
  SELECT
    id, node, writer, seq, kind, reason, hypervisor,
    shape.cpu AS cpu, shape.mem_bytes AS mem_bytes, shape.storage_bytes AS storage_bytes, t,
    regexp_extract(kind, '^(.*)\.[a-z]+$', 1) AS family,
    regexp_extract(kind, '\.([a-z]+)$', 1) AS phase,
    CASE WHEN kind LIKE 'snap.%' THEN snapshot_id ELSE vm_id END AS resource_id,
    row_number() OVER (PARTITION BY id ORDER BY node, writer, seq) AS copy
  FROM metering_ledger
) WHERE copy = 1;

-- 2. The state machine as window functions. The state after an event depends only on its phase
--    (a stop leaves nothing open; a start or baseline leaves something open), so:
--    grp = number of stops before the event: each group is [start|running ...] [stop]?
--    the first event of a group opens an interval unless it is a stop; the group's stop closes it.
CREATE OR REPLACE TABLE metering_steps AS
SELECT
  e.*,
  lag(phase) OVER (PARTITION BY family, resource_id ORDER BY t, writer, seq, id) AS prev_phase,
  COALESCE(SUM(CASE WHEN phase = 'stop' THEN 1 ELSE 0 END) OVER (
    PARTITION BY family, resource_id ORDER BY t, writer, seq, id ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS grp
FROM metering_events e;

CREATE OR REPLACE TABLE metering_steps_ranked AS
SELECT
  s.*,
  row_number() OVER (PARTITION BY family, resource_id, grp ORDER BY t, writer, seq, id) AS pos,
  row_number() OVER (PARTITION BY family, resource_id, grp, phase = 'stop' ORDER BY t DESC, writer DESC, seq DESC, id DESC) AS rpos
FROM metering_steps s;

-- Reported, never billed.
CREATE OR REPLACE TABLE metering_anomalies AS
SELECT
  CASE
    WHEN phase = 'start' THEN 'duplicate_start'
    WHEN prev_phase IS NULL THEN 'orphan_stop'
    ELSE 'duplicate_stop'
  END AS type,
  family, resource_id, id AS event_id, node, t
FROM metering_steps
WHERE (phase = 'start' AND prev_phase IS NOT NULL AND prev_phase <> 'stop')
   OR (phase = 'stop' AND (prev_phase IS NULL OR prev_phase = 'stop'));

-- 3. Nodes and the watermark: min over live nodes of complete_through, capped by the clock, minus grace.
CREATE OR REPLACE TABLE metering_nodes AS
WITH names AS (SELECT DISTINCT node FROM metering_events UNION SELECT node FROM metering_node_progress)
SELECT
  n.node, p.reported_ms, p.complete_ms,
  (p.reported_ms IS NULL OR getvariable('now_ms') - p.reported_ms > getvariable('stale_after_ms')) AS stale
FROM names n LEFT JOIN metering_node_progress p USING (node);

CREATE OR REPLACE TABLE metering_watermark AS
SELECT GREATEST(computed, COALESCE(getvariable('previous_watermark_ms'), computed)) AS watermark_ms, computed AS computed_ms
FROM (
  SELECT LEAST(getvariable('now_ms'), COALESCE(MIN(complete_ms) FILTER (WHERE NOT stale), getvariable('now_ms'))) - getvariable('grace_ms') AS computed
  FROM metering_nodes
);

-- 4. Intervals. Each bills the shape of its opening event. An open interval whose latest evidence
--    came from a stale node ends at that evidence or the node's complete_through, whichever is later
--    (capped by the clock), flagged unconfirmed_end.
CREATE OR REPLACE TABLE metering_intervals AS
WITH openers AS (SELECT * FROM metering_steps_ranked WHERE pos = 1 AND phase <> 'stop'),
closers AS (SELECT family, resource_id, grp, t AS end_t, reason AS stop_reason, id AS end_event_id FROM metering_steps_ranked WHERE phase = 'stop' AND pos > 1),
evidence AS (SELECT family, resource_id, grp, t AS last_t, node AS last_node FROM metering_steps_ranked WHERE phase <> 'stop' AND rpos = 1)
SELECT
  o.family, o.resource_id, o.node, o.hypervisor, o.cpu, o.mem_bytes, o.storage_bytes,
  o.t AS start_ms,
  CASE
    WHEN c.end_t IS NOT NULL THEN c.end_t
    WHEN COALESCE(n.stale, false) AND n.complete_ms IS NULL THEN ev.last_t
    WHEN COALESCE(n.stale, false) THEN GREATEST(ev.last_t, LEAST(n.complete_ms, getvariable('now_ms')))
  END AS end_ms,
  o.reason AS open_reason,
  CASE WHEN c.end_t IS NOT NULL THEN c.stop_reason WHEN COALESCE(n.stale, false) THEN 'stale-node' END AS close_reason,
  o.phase = 'running' AS baseline,
  c.end_t IS NULL AND COALESCE(n.stale, false) AS unconfirmed_end,
  o.id AS start_event_id,
  c.end_event_id
FROM openers o
JOIN evidence ev USING (family, resource_id, grp)
LEFT JOIN closers c USING (family, resource_id, grp)
LEFT JOIN metering_nodes n ON n.node = ev.last_node;
