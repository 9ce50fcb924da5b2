-- De-duplication by id only (contract v2). The kept copy of an id is the one with the smallest
-- (object name, byte offset) among every copy ever read, so no split of the input over runs
-- changes which copy wins (failure case 4); the id arrives with the first run that read any copy.
-- The node an entry is billed on is its object's node= partition (the shipper's identity, case 2).
-- Incremental: only the ids this run read a copy of are judged again; every other kept row, and
-- every verdict fixed at arrival (late, too late), stands.
CREATE OR REPLACE TABLE {{touched}} AS
SELECT id, COUNT(*) AS new_copies FROM {{entries_new}} GROUP BY id;

CREATE OR REPLACE TABLE {{kept_before}} AS
SELECT k.* FROM {{kept}} AS k JOIN {{touched}} AS t ON t.id = k.id;

-- Every copy of a touched id, old and new: what its kept row and its conflicts are decided from.
-- An id never seen before has only this run's copies; only ids with a kept row have older ones:
-- the kept one, whole, and the others with only the columns {{entries}} keeps of them (none of
-- them can win: the kept copy is the smallest (object, offset) of all earlier ones). A view: a
-- table would be one more whole copy of this run's entries in the state file.
CREATE OR REPLACE VIEW {{copies_of_touched}} AS
SELECT
  run, object, line_offset, obj_node, seg_created_ms, digest, id, entry_node, writer, seq, kind, resource_id, reason,
  hypervisor, cpu, mem_bytes, storage_bytes, t, emitted_at
FROM {{entries_new}}
UNION ALL
SELECT
  run, object, line_offset, obj_node, seg_created_ms, digest, id, entry_node, writer, seq, kind, resource_id, reason,
  hypervisor, cpu, mem_bytes, storage_bytes, t, emitted_at
FROM {{kept_before}}
UNION ALL
SELECT
  e.run, e.object, e.line_offset, NULL AS obj_node, NULL AS seg_created_ms, e.digest, e.id, NULL AS entry_node,
  NULL AS writer, NULL AS seq, NULL AS kind, NULL AS resource_id, NULL AS reason, NULL AS hypervisor, NULL AS cpu,
  NULL AS mem_bytes, NULL AS storage_bytes, NULL AS t, NULL AS emitted_at
FROM {{entries}} AS e
JOIN {{kept_before}} AS b ON b.id = e.id
WHERE e.object <> b.object OR e.line_offset <> b.line_offset;

-- Every copy of the ids with several copies: those kept before (their kept copy and this run's),
-- and those this run read more than once. Every other touched id has one copy, this run's, which
-- is its kept copy, its first sighting and its arrival. Only these few are ranked, by where each
-- copy was read, carrying what their findings quote of the kept copy: whole rows through a window,
-- or a join of every touched id's count, held all of a run's copies at once (a 1 GiB limit failed
-- at 3.4 M entries a run).
CREATE OR REPLACE TABLE {{copy_ranks}} AS
WITH ranked AS (
  SELECT
    c.id,
    c.object,
    c.line_offset,
    c.digest,
    ROW_NUMBER() OVER (PARTITION BY c.id ORDER BY c.object, c.line_offset) AS copy_rank,
    MIN(c.run) OVER (PARTITION BY c.id) AS arrival_run,
    COUNT(*) OVER (PARTITION BY c.id) AS copies,
    -- Where the id was first read (run, then name order within a run): orders writers' first sightings.
    FIRST_VALUE(c.object) OVER (PARTITION BY c.id ORDER BY c.run, c.object, c.line_offset) AS first_object,
    FIRST_VALUE(c.line_offset) OVER (PARTITION BY c.id ORDER BY c.run, c.object, c.line_offset) AS first_offset,
    -- The kept copy's (the smallest object, offset: a whole row, from this run or kept before).
    FIRST_VALUE(c.digest) OVER (PARTITION BY c.id ORDER BY c.object, c.line_offset) AS kept_digest,
    FIRST_VALUE(c.entry_node) OVER (PARTITION BY c.id ORDER BY c.object, c.line_offset) AS kept_entry_node,
    FIRST_VALUE(c.emitted_at) OVER (PARTITION BY c.id ORDER BY c.object, c.line_offset) AS kept_emitted_at,
    FIRST_VALUE(c.writer) OVER (PARTITION BY c.id ORDER BY c.object, c.line_offset) AS kept_writer,
    FIRST_VALUE(c.seq) OVER (PARTITION BY c.id ORDER BY c.object, c.line_offset) AS kept_seq
  FROM {{copies_of_touched}} AS c
  WHERE c.id IN (SELECT id FROM {{touched}} WHERE new_copies > 1 UNION ALL SELECT id FROM {{kept_before}})
)
SELECT r.*, a.arrival_watermark_ms, a.arrival_horizon_ms
FROM ranked AS r
LEFT JOIN {{runs}} AS a ON a.run = r.arrival_run;

-- Each touched id's kept copy, whole, judged. The copies are read once, and joined only with the
-- few ranked ids and this run's one row of arrival facts: a join with {{runs}} (a few rows per
-- run) was built on the run's copies instead, whole, by DuckDB 1.5, which counts no row a
-- transaction wrote in its estimates (duckdb/duckdb#21573) and so took them for the smaller side.
CREATE OR REPLACE TABLE {{kept_touched}} AS
WITH ranked AS (
  SELECT
    e.*,
    COALESCE(r.arrival_run, e.run) AS arrival_run,
    COALESCE(r.copies, 1) AS copies,
    COALESCE(r.first_object, e.object) AS first_object,
    COALESCE(r.first_offset, e.line_offset) AS first_offset,
    CASE WHEN r.id IS NULL THEN cur.arrival_watermark_ms ELSE r.arrival_watermark_ms END AS arrival_watermark_ms,
    CASE WHEN r.id IS NULL THEN cur.arrival_horizon_ms ELSE r.arrival_horizon_ms END AS arrival_horizon_ms
  FROM {{copies_of_touched}} AS e
  LEFT JOIN (SELECT * FROM {{copy_ranks}} WHERE copy_rank = 1) AS r ON r.id = e.id
  CROSS JOIN (
    SELECT MAX(arrival_watermark_ms) AS arrival_watermark_ms, MAX(arrival_horizon_ms) AS arrival_horizon_ms
    FROM {{runs}} WHERE run = {{$run}}
  ) AS cur
  WHERE r.id IS NULL OR (e.object = r.object AND e.line_offset = r.line_offset)
),
phased AS (
  SELECT
    r.*,
    CASE WHEN r.kind LIKE '%.start' THEN 'start' WHEN r.kind LIKE '%.stop' THEN 'stop' ELSE 'running' END AS phase
  FROM ranked AS r
),
judged AS (
  SELECT
    p.*,
    SUBSTR(p.kind, 1, LENGTH(p.kind) - LENGTH(p.phase) - 1) AS family,
    p.entry_node <> p.obj_node AS node_mismatch,
    -- A broken clock: stamped further than max-skew from its segment's creation. Reported, not billed.
    (p.seg_created_ms IS NOT NULL AND ABS(p.t - p.seg_created_ms) > {{$max_skew_ms}}) AS clock_skew
  FROM phased AS p
),
timely AS (
  SELECT
    j.*,
    -- A start or baseline before the horizon in force when it arrived: its hours were settled long
    -- ago. A stop is never too late (case 6): it ends the interval it belongs to.
    (NOT j.clock_skew AND j.phase <> 'stop' AND j.arrival_horizon_ms IS NOT NULL AND j.t < j.arrival_horizon_ms) AS too_late
  FROM judged AS j
),
verdicts AS (
  SELECT
    x.*,
    -- Late: before the watermark in force when it arrived (billed; the hours it changes are revisions).
    (NOT x.clock_skew AND NOT x.too_late AND x.arrival_watermark_ms IS NOT NULL AND x.t < x.arrival_watermark_ms) AS late,
    (NOT x.clock_skew AND NOT x.too_late) AS billable
  FROM timely AS x
)
SELECT
  run, object, line_offset, obj_node, seg_created_ms, digest, id, entry_node, writer, seq, kind, resource_id, reason,
  hypervisor, cpu, mem_bytes, storage_bytes, t, emitted_at, copies, arrival_run, phase, family, first_object, first_offset,
  node_mismatch, clock_skew, too_late, late, billable
FROM verdicts;

DELETE FROM {{kept}} WHERE id IN (SELECT id FROM {{touched}});

INSERT INTO {{kept}} SELECT * FROM {{kept_touched}};

-- Kept rows that are new or replaced: what can change a resource's timeline, a seq group, a writer's ranges.
CREATE OR REPLACE TABLE {{kept_changes}} AS
SELECT
  -- What the later rules read of them (the seq ranges and groups, 30_resources.sql's affected
  -- resources and fold input): not whole rows, which on a first run would copy every entry again.
  n.id, n.obj_node, n.writer, n.seq, n.family, n.resource_id, n.phase, n.reason, n.hypervisor, n.cpu, n.mem_bytes,
  n.storage_bytes, n.t, n.billable,
  b.id IS NOT NULL AS existed,
  b.family AS old_family,
  b.resource_id AS old_resource_id,
  b.t AS old_t,
  b.billable AS old_billable,
  b.writer AS old_writer,
  b.seq AS old_seq
FROM {{kept_touched}} AS n
LEFT JOIN {{kept_before}} AS b ON b.id = n.id
WHERE b.id IS NULL OR b.object <> n.object OR b.line_offset <> n.line_offset;

-- Findings about one id: judged again with it.
DELETE FROM {{findings}} WHERE finding <> 'seq_conflicts' AND id IN (SELECT id FROM {{touched}});

INSERT INTO {{findings}} (finding, object, line_offset, id, node, emitted_at, writer, seq)
-- Only an id of several copies can conflict.
SELECT 'conflicting_duplicates', object, line_offset, id, kept_entry_node, kept_emitted_at, kept_writer, kept_seq
FROM {{copy_ranks}}
WHERE digest <> kept_digest
UNION ALL
SELECT 'node_mismatches', object, line_offset, id, entry_node, emitted_at, writer, seq FROM {{kept_touched}} WHERE node_mismatch
UNION ALL
SELECT 'clock_skew_entries', object, line_offset, id, entry_node, emitted_at, writer, seq FROM {{kept_touched}} WHERE clock_skew
UNION ALL
SELECT 'too_late_entries', object, line_offset, id, entry_node, emitted_at, writer, seq FROM {{kept_touched}} WHERE too_late
UNION ALL
SELECT 'late_entries', object, line_offset, id, entry_node, emitted_at, writer, seq FROM {{kept_touched}} WHERE late;

-- This run's copies join the earlier ones, after the last read of copies_of_touched (which reads
-- both: before, they would count twice).
INSERT INTO {{entries}} (run, object, line_offset, id, digest)
SELECT run, object, line_offset, id, digest FROM {{entries_new}};

-- Distinct ids sharing one (writer, seq): a restored backup, a cloned node image (case 3). All are
-- billed; every copy after the first in (object, offset) order is reported. Judged again for every
-- group a changed kept row enters or leaves.
CREATE OR REPLACE TABLE {{seq_groups}} AS
SELECT writer, seq FROM {{kept_changes}}
UNION DISTINCT
SELECT old_writer AS writer, old_seq AS seq FROM {{kept_changes}} WHERE existed;

MERGE INTO {{findings}} AS f
USING {{seq_groups}} AS g
ON g.writer = f.writer AND g.seq = f.seq AND f.finding = 'seq_conflicts'
WHEN MATCHED THEN DELETE;

INSERT INTO {{findings}} (finding, object, line_offset, id, node, emitted_at, writer, seq)
SELECT 'seq_conflicts', object, line_offset, id, entry_node, emitted_at, writer, seq
FROM (
  SELECT k.object, k.line_offset, k.id, k.entry_node, k.emitted_at, k.writer, k.seq,
    ROW_NUMBER() OVER (PARTITION BY k.writer, k.seq ORDER BY k.object, k.line_offset) AS seq_rank
  FROM {{kept}} AS k
  JOIN (
    -- Only groups of several ids are ranked: a window over every group of the run held all of the
    -- run's kept rows at once (600 MiB of a 1 GiB limit at 3.4 M entries), for no finding.
    SELECT c.writer, c.seq
    FROM {{kept}} AS c
    JOIN {{seq_groups}} AS g ON g.writer = c.writer AND g.seq = c.seq
    GROUP BY c.writer, c.seq
    HAVING COUNT(*) > 1
  ) AS shared ON shared.writer = k.writer AND shared.seq = k.seq
) AS s
WHERE seq_rank > 1;

-- The node of a writer: that of its entry read first (seq gaps are checked against that node's
-- report). First sightings only come later, so the stored one stands unless its own entry changed.
-- A writer's first sighting in this run is found by aggregates over few groups (one per writer),
-- step by step down its order: a window over all of the run's rows, partitioned by writer, held them
-- all (800 MiB of a 1 GiB limit at 3.4 M entries) to keep one row per writer.
CREATE OR REPLACE TABLE {{writer_nodes}} AS
WITH writer_first_run AS (
  SELECT writer, MIN(arrival_run) AS arrival_run FROM {{kept_touched}} GROUP BY writer
),
writer_first_object AS (
  SELECT k.writer, k.arrival_run, MIN(k.first_object) AS first_object
  FROM {{kept_touched}} AS k
  JOIN writer_first_run AS f ON f.writer = k.writer AND f.arrival_run = k.arrival_run
  GROUP BY k.writer, k.arrival_run
),
writer_first_offset AS (
  SELECT k.writer, k.arrival_run, k.first_object, MIN(k.first_offset) AS first_offset
  FROM {{kept_touched}} AS k
  JOIN writer_first_object AS f ON f.writer = k.writer AND f.arrival_run = k.arrival_run AND f.first_object = k.first_object
  GROUP BY k.writer, k.arrival_run, k.first_object
),
run_firsts AS (
  SELECT k.writer, k.obj_node AS node, k.arrival_run, k.first_object, k.first_offset, k.id
  FROM {{kept_touched}} AS k
  JOIN writer_first_offset AS f
    ON f.writer = k.writer AND f.arrival_run = k.arrival_run AND f.first_object = k.first_object AND f.first_offset = k.first_offset
)
SELECT writer, node, arrival_run, first_object, first_offset, id
FROM (
  SELECT c.*, ROW_NUMBER() OVER (PARTITION BY writer ORDER BY arrival_run, first_object, first_offset) AS rn
  FROM (
    SELECT writer, node, arrival_run, first_object, first_offset, id FROM {{writer_nodes}} WHERE id NOT IN (SELECT id FROM {{touched}})
    UNION ALL
    SELECT writer, node, arrival_run, first_object, first_offset, id FROM run_firsts
  ) AS c
) AS w
WHERE rn = 1;

-- Each writer's seq numbers as ranges: the stored ranges merged with the new numbers (a writer
-- that lost a number, its kept row replaced by a copy with another seq, is rebuilt from kept).
CREATE OR REPLACE TABLE {{seq_redo}} AS
SELECT DISTINCT old_writer AS writer FROM {{kept_changes}} WHERE existed AND (old_writer <> writer OR old_seq <> seq);

CREATE OR REPLACE TABLE {{seq_ranges}} AS
WITH pieces AS (
  SELECT writer, lo, hi FROM {{seq_ranges}} WHERE writer NOT IN (SELECT writer FROM {{seq_redo}})
  UNION ALL
  SELECT writer, seq AS lo, seq AS hi FROM {{kept_changes}}
  UNION ALL
  SELECT k.writer, k.seq AS lo, k.seq AS hi FROM {{kept}} AS k JOIN {{seq_redo}} AS r ON r.writer = k.writer
),
ordered AS (
  SELECT writer, lo, hi, MAX(hi) OVER (PARTITION BY writer ORDER BY lo, hi ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS reach
  FROM pieces
),
grouped AS (
  SELECT writer, lo, hi, SUM(CASE WHEN reach IS NULL OR lo > reach + 1 THEN 1 ELSE 0 END) OVER (PARTITION BY writer ORDER BY lo, hi ROWS UNBOUNDED PRECEDING) AS grp
  FROM ordered
)
SELECT writer, MIN(lo) AS lo, MAX(hi) AS hi FROM grouped GROUP BY writer, grp;
