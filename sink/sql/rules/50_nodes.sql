-- Nodes and the watermark. One trusted clock (case 7): a node is stale when the consumer's clock
-- minus the destination's own time of its last progress write exceeds stale-after, and what it
-- vouches for (complete_through) counts at most up to that time. Fail closed (case 8): a listed
-- progress object this run cannot read keeps the node's last known progress; with none known it
-- vouches for nothing (the epoch) and so holds the watermark where it is. Only no progress object at
-- all, or real silence, makes a node stale. Nodes: those with a progress object (now or before) and
-- the nodes of the writers in the ledger.
CREATE OR REPLACE TABLE {{nodes}} AS
WITH names AS (
  SELECT node FROM {{node_reads}}
  UNION ALL SELECT node FROM {{node_known}}
  UNION ALL SELECT node FROM {{writer_nodes}}
),
evidence AS (
  SELECT
    n.node,
    r.node IS NOT NULL AS listed,
    r.listed_updated_ms,
    COALESCE(r.read_ok, FALSE) AS read_ok,
    (r.node IS NOT NULL AND NOT r.read_ok) AS listed_unreadable,
    CASE
      WHEN r.read_ok THEN CAST(NULL AS STRING)
      WHEN r.node IS NOT NULL THEN r.read_error
      WHEN k.node IS NOT NULL THEN 'progress object no longer listed'
      ELSE 'no progress object'
    END AS progress_error,
    -- This run's read if usable, else the last known one.
    (r.read_ok OR k.node IS NOT NULL) AS has_current,
    CASE WHEN r.read_ok THEN r.reported_ms ELSE k.reported_ms END AS reported_ms,
    CASE WHEN r.read_ok THEN r.complete_ms ELSE k.complete_ms END AS complete_ms,
    CASE WHEN r.read_ok THEN r.backlog_bytes ELSE k.backlog_bytes END AS backlog_bytes,
    CASE WHEN r.read_ok THEN r.listed_updated_ms ELSE k.updated_ms END AS current_updated_ms
  FROM (SELECT node FROM names GROUP BY node) AS n
  LEFT JOIN {{node_reads}} AS r ON r.node = n.node
  LEFT JOIN {{node_known}} AS k ON k.node = n.node
),
timed AS (
  SELECT
    e.*,
    -- A listed object shows the node alive even when its body could not be read this time.
    COALESCE(e.listed_updated_ms, e.current_updated_ms) AS updated_ms,
    CASE WHEN e.has_current THEN LEAST(e.complete_ms, e.current_updated_ms) END AS trusted_ms
  FROM evidence AS e
)
SELECT
  t.*,
  (t.updated_ms IS NULL OR (NOT t.listed_unreadable AND NOT t.has_current) OR {{$now_ms}} - t.updated_ms > {{$stale_after_ms}}) AS stale
FROM timed AS t;

CREATE OR REPLACE TABLE {{watermark}} AS
WITH live AS (
  SELECT MIN(COALESCE(trusted_ms, 0)) AS min_complete_ms FROM {{nodes}} WHERE NOT stale
),
computed AS (
  SELECT
    min_complete_ms,
    LEAST({{$now_ms}}, COALESCE(min_complete_ms, {{$now_ms}})) - {{$grace_ms}} AS computed_ms
  FROM live
)
SELECT
  c.min_complete_ms,
  c.computed_ms,
  -- It never moves back: what was published final stays final. A chunk of a backlog with more to
  -- come holds it where it was (the epoch, before any entry, when there was none): the listed objects
  -- it has not read yet may hold entries of any hour, so no hour turns final before they are in.
  CASE
    WHEN {{$hold_watermark}} = 1 THEN COALESCE(r.previous_watermark_ms, 0)
    WHEN r.previous_watermark_ms IS NULL THEN c.computed_ms
    ELSE GREATEST(r.previous_watermark_ms, c.computed_ms)
  END AS watermark_ms,
  r.previous_watermark_ms
FROM computed AS c
CROSS JOIN (SELECT previous_watermark_ms FROM {{runs}} WHERE run = {{$run}}) AS r;
