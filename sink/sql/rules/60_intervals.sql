-- Intervals as billed. One still open on a stale node ends at the last moment there is evidence
-- for: max(last evidence, min(trusted complete_through, now)), flagged unconfirmed_end; when the
-- node comes back, the interval is recomputed from the real events and changed final hours are revisions.
-- Only candidates can change: resources folded this run, and those with an open interval (their
-- node's staleness and the watermark move every run). Of a candidate only what the fold replaced
-- can change: all its intervals when it was folded again from its first event (whole), else only
-- its open interval and what the fold appended after it. Its closed history stands, so the cost
-- follows the new events, not the history (a VM running for a month has a month of intervals).
CREATE OR REPLACE TABLE {{candidates}} AS
SELECT family, resource_id, MAX(folded) = 1 AS folded, MAX(whole) = 1 AS whole
FROM (
  SELECT family, resource_id, 1 AS folded, CASE WHEN resume THEN 0 ELSE 1 END AS whole FROM {{affected}}
  UNION ALL
  SELECT family, resource_id, 0 AS folded, 0 AS whole FROM {{fold_intervals}} WHERE end_ms IS NULL
) AS c
GROUP BY family, resource_id;

-- The published rows that can change: a whole candidate's all, else those that were open in the
-- fold when published (an open end, or one derived from a stale node).
CREATE OR REPLACE TABLE {{intervals_old}} AS
SELECT i.*
FROM {{intervals}} AS i
JOIN {{candidates}} AS c ON c.family = i.family AND c.resource_id = i.resource_id
WHERE c.whole OR i.end_ms IS NULL OR i.unconfirmed_end;

-- What replaces them: every interval the fold produced this run (a folded resource's deleted
-- intervals came back among them), and the open interval of a candidate that was not folded.
CREATE OR REPLACE TABLE {{intervals_new}} AS
WITH current AS (
  SELECT n.* FROM {{fold_new_intervals}} AS n
  UNION ALL
  SELECT i.*
  FROM {{fold_intervals}} AS i
  JOIN {{candidates}} AS c ON c.family = i.family AND c.resource_id = i.resource_id
  WHERE NOT c.folded AND i.end_ms IS NULL
)
SELECT
  i.family,
  i.resource_id,
  i.node,
  i.hypervisor,
  i.cpu,
  i.mem_bytes,
  i.storage_bytes,
  i.start_ms,
  CASE
    WHEN i.end_ms IS NOT NULL OR NOT COALESCE(n.stale, FALSE) THEN i.end_ms
    WHEN n.trusted_ms IS NULL THEN i.last_evidence_ms
    ELSE GREATEST(i.last_evidence_ms, LEAST(n.trusted_ms, {{$now_ms}}))
  END AS end_ms,
  i.open_reason,
  CASE WHEN i.end_ms IS NULL AND COALESCE(n.stale, FALSE) THEN 'stale-node' ELSE i.close_reason END AS close_reason,
  i.baseline,
  (i.end_ms IS NULL AND COALESCE(n.stale, FALSE)) AS unconfirmed_end,
  i.start_event_id,
  i.end_event_id
FROM current AS i
LEFT JOIN {{nodes}} AS n ON n.node = i.node;

-- The output partitions (by start day) that change.
INSERT INTO {{changed_days}} (output, day_ms)
SELECT DISTINCT 'intervals', @idiv(start_ms, 86400000) * 86400000
FROM (
  SELECT * FROM (SELECT * FROM {{intervals_old}} EXCEPT DISTINCT SELECT * FROM {{intervals_new}}) AS gone
  UNION ALL
  SELECT * FROM (SELECT * FROM {{intervals_new}} EXCEPT DISTINCT SELECT * FROM {{intervals_old}}) AS came
) AS d;

-- Per resource, the first moment its billed time can differ from the last run's: an interval that
-- came, went or changed counts from its start; one whose billed end alone moved (closed, extended to
-- the new watermark, ended by a stale node) from the earlier of its two ends. Hours before it stand.
-- A run that holds the watermark recomputes no final hour: it starts at the first hour that is not
-- final (found_hour keeps where it would have started, for pending_dirty, 90_state.sql); the next
-- run that does not hold starts where the held ones left off, if that is earlier.
CREATE OR REPLACE TABLE {{dirty}} AS
WITH marks AS (
  SELECT watermark_ms, previous_watermark_ms, @idiv(watermark_ms, 3600000) * 3600000 AS open_hour FROM {{watermark}}
),
o AS (
  SELECT i.*, COALESCE(i.end_ms, m.previous_watermark_ms, i.start_ms) AS bill_end_ms FROM {{intervals_old}} AS i CROSS JOIN marks AS m
),
n AS (
  SELECT i.*, COALESCE(i.end_ms, m.watermark_ms) AS bill_end_ms FROM {{intervals_new}} AS i CROSS JOIN marks AS m
),
pairs AS (
  SELECT
    COALESCE(o.family, n.family) AS family,
    COALESCE(o.resource_id, n.resource_id) AS resource_id,
    CASE
      WHEN o.start_event_id IS NULL THEN n.start_ms
      WHEN n.start_event_id IS NULL THEN o.start_ms
      WHEN o.start_ms <> n.start_ms OR o.node <> n.node OR o.hypervisor IS DISTINCT FROM n.hypervisor
        OR o.cpu <> n.cpu OR o.mem_bytes <> n.mem_bytes OR o.storage_bytes <> n.storage_bytes THEN LEAST(o.start_ms, n.start_ms)
      WHEN o.bill_end_ms <> n.bill_end_ms THEN GREATEST(o.start_ms, LEAST(o.bill_end_ms, n.bill_end_ms))
    END AS dirty_from
  FROM o
  FULL OUTER JOIN n ON o.family = n.family AND o.resource_id = n.resource_id AND o.start_event_id = n.start_event_id
),
found AS (
  SELECT family, resource_id, @idiv(MIN(dirty_from), 3600000) * 3600000 AS found_hour
  FROM pairs
  WHERE dirty_from IS NOT NULL
  GROUP BY family, resource_id
),
held AS (
  SELECT family, resource_id, dirty_hour AS found_hour FROM {{pending_dirty}} WHERE {{$hold_watermark}} = 0
),
joined AS (
  SELECT family, resource_id, MIN(found_hour) AS found_hour
  FROM (SELECT * FROM found UNION ALL SELECT * FROM held) AS x
  GROUP BY family, resource_id
)
SELECT
  j.family,
  j.resource_id,
  CASE WHEN {{$hold_watermark}} = 1 THEN GREATEST(j.found_hour, m.open_hour) ELSE j.found_hour END AS dirty_hour,
  j.found_hour
FROM joined AS j
CROSS JOIN marks AS m;

MERGE INTO {{intervals}} AS i
USING {{candidates}} AS c
ON c.family = i.family AND c.resource_id = i.resource_id AND (c.whole OR i.end_ms IS NULL OR i.unconfirmed_end)
WHEN MATCHED THEN DELETE;

-- Closed rows first, then, in a statement of their own, the rows the next run replaces (the MERGE's
-- open or stale-ended ones), so those sit together at the table's end. DuckDB keeps a delete list of
-- 16 KiB for every vector (2,048 rows) with a deleted row in memory whenever the table is read:
-- interleaved, each run's replacements left one in every vector, ~8 bytes a row of the whole history
-- (~390 MiB to scan the intervals of a 100 M entry history); together, they cost what is deleted.
INSERT INTO {{intervals}} SELECT * FROM {{intervals_new}} WHERE (end_ms IS NULL OR unconfirmed_end) IS NOT TRUE;
INSERT INTO {{intervals}} SELECT * FROM {{intervals_new}} WHERE end_ms IS NULL OR unconfirmed_end;
