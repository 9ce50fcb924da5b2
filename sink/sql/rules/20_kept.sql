-- De-duplication by id only (contract v2). The kept copy of an id is the one with the smallest
-- (object name, byte offset) among every copy ever read, so no split of the input over runs
-- changes which copy wins (failure case 4); the id arrives with the first run that read any copy.
-- The node an entry is billed on is its object's node= partition (the shipper's identity, case 2).
CREATE OR REPLACE TABLE {{kept}} AS
WITH ranked AS (
  SELECT
    e.*,
    ROW_NUMBER() OVER (PARTITION BY id ORDER BY object, line_offset) AS copy_rank,
    ROW_NUMBER() OVER (PARTITION BY id ORDER BY run, object, line_offset) AS read_rank,
    MIN(run) OVER (PARTITION BY id) AS arrival_run,
    COUNT(*) OVER (PARTITION BY id) AS copies
  FROM {{entries}} AS e
),
first_read AS (
  -- Where the id was first read (run, then name order within a run): orders writers' first sightings.
  SELECT id, object AS first_object, line_offset AS first_offset FROM ranked WHERE read_rank = 1
),
phased AS (
  SELECT
    r.*,
    CASE WHEN r.kind LIKE '%.start' THEN 'start' WHEN r.kind LIKE '%.stop' THEN 'stop' ELSE 'running' END AS phase
  FROM ranked AS r
  WHERE r.copy_rank = 1
),
judged AS (
  SELECT
    p.*,
    SUBSTR(p.kind, 1, LENGTH(p.kind) - LENGTH(p.phase) - 1) AS family,
    f.first_object,
    f.first_offset,
    a.arrival_watermark_ms,
    a.arrival_horizon_ms,
    p.entry_node <> p.obj_node AS node_mismatch,
    -- A broken clock: stamped further than max-skew from its segment's creation. Reported, not billed.
    (p.seg_created_ms IS NOT NULL AND ABS(p.t - p.seg_created_ms) > {{$max_skew_ms}}) AS clock_skew
  FROM phased AS p
  JOIN first_read AS f ON f.id = p.id
  LEFT JOIN {{runs}} AS a ON a.run = p.arrival_run
),
timely AS (
  SELECT
    j.*,
    -- A start or baseline before the horizon in force when it arrived: its hours were settled long
    -- ago. A stop is never too late (case 6): it ends the interval it belongs to.
    (NOT j.clock_skew AND j.phase <> 'stop' AND j.arrival_horizon_ms IS NOT NULL AND j.t < j.arrival_horizon_ms) AS too_late
  FROM judged AS j
)
SELECT
  x.*,
  -- Late: before the watermark in force when it arrived (billed; the hours it changes are revisions).
  (NOT x.clock_skew AND NOT x.too_late AND x.arrival_watermark_ms IS NOT NULL AND x.t < x.arrival_watermark_ms) AS late,
  (NOT x.clock_skew AND NOT x.too_late) AS billable
FROM timely AS x;

-- The node of a writer: that of its entry read first (seq gaps are checked against that node's report).
CREATE OR REPLACE TABLE {{writer_nodes}} AS
SELECT writer, obj_node AS node
FROM (
  SELECT writer, obj_node, ROW_NUMBER() OVER (PARTITION BY writer ORDER BY arrival_run, first_object, first_offset) AS rn
  FROM {{kept}}
) AS w
WHERE rn = 1;

-- Entry findings (object, offset of the copy they are about): reported in (object, offset) order.
CREATE OR REPLACE TABLE {{findings}} AS
SELECT 'conflicting_duplicates' AS finding, c.object, c.line_offset, k.id, k.entry_node AS node, k.emitted_at
FROM {{entries}} AS c
JOIN {{kept}} AS k ON k.id = c.id
WHERE c.digest <> k.digest
UNION ALL
-- Distinct ids sharing one (writer, seq): a restored backup, a cloned node image (case 3). All are billed.
SELECT 'seq_conflicts' AS finding, object, line_offset, id, entry_node AS node, emitted_at
FROM (
  SELECT k.*, ROW_NUMBER() OVER (PARTITION BY writer, seq ORDER BY object, line_offset) AS seq_rank
  FROM {{kept}} AS k
) AS s
WHERE seq_rank > 1
UNION ALL
SELECT 'node_mismatches' AS finding, object, line_offset, id, entry_node AS node, emitted_at FROM {{kept}} WHERE node_mismatch
UNION ALL
SELECT 'clock_skew_entries' AS finding, object, line_offset, id, entry_node AS node, emitted_at FROM {{kept}} WHERE clock_skew
UNION ALL
SELECT 'too_late_entries' AS finding, object, line_offset, id, entry_node AS node, emitted_at FROM {{kept}} WHERE too_late
UNION ALL
SELECT 'late_entries' AS finding, object, line_offset, id, entry_node AS node, emitted_at FROM {{kept}} WHERE late;
