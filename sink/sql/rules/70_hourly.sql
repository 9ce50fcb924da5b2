-- Exact hour split: one row per (hour, family, resource, node, hypervisor, shape) with the integer
-- ms of the UTC hour its intervals cover. A closed interval counts to its end, an open one to the
-- watermark; [start, end) pieces sum to end - start. Only the hours from each dirty resource's
-- dirty hour on are computed: every other row stands as published. Those hours are summed over all
-- of a resource's intervals as now billed (60_intervals.sql replaced only some: a closed one can
-- share an hour with the open one after it).
CREATE OR REPLACE TABLE {{totals}} AS
WITH billed AS (
  SELECT i.*, d.dirty_hour, COALESCE(i.end_ms, w.watermark_ms) AS bill_end_ms
  FROM {{intervals}} AS i
  JOIN {{dirty}} AS d ON d.family = i.family AND d.resource_id = i.resource_id
  CROSS JOIN {{watermark}} AS w
  WHERE COALESCE(i.end_ms, w.watermark_ms) > i.start_ms AND COALESCE(i.end_ms, w.watermark_ms) > d.dirty_hour
),
slices AS (
  SELECT b.*, h AS hour_ms
  FROM billed AS b
  CROSS JOIN @unnest(@range(GREATEST(@idiv(b.start_ms, 3600000) * 3600000, b.dirty_hour), b.bill_end_ms, 3600000), h)
)
SELECT
  hour_ms, family, resource_id, node, hypervisor, cpu, mem_bytes, storage_bytes,
  SUM(LEAST(bill_end_ms, hour_ms + 3600000) - GREATEST(start_ms, hour_ms)) AS ms
FROM slices
GROUP BY hour_ms, family, resource_id, node, hypervisor, cpu, mem_bytes, storage_bytes;

-- The published rows in the dirty ranges, as they were.
CREATE OR REPLACE TABLE {{hourly_old}} AS
SELECT h.*
FROM {{hourly}} AS h
JOIN {{dirty}} AS d ON d.family = h.family AND d.resource_id = h.resource_id
WHERE h.hour_ms >= d.dirty_hour;

-- Publication against the published rows (docs/consumer.md, "Publication and revisions"): an hour
-- wholly before the watermark is final; a final row is version 1 the first time, and every later
-- change (a new value, a withdrawal to 0, a row appearing in an hour already final) is a new
-- version revising the previous one. Unchanged final rows keep their version forever.
CREATE OR REPLACE TABLE {{publication}} AS
WITH published AS (
  SELECT * FROM {{hourly_old}} WHERE final
),
joined AS (
  SELECT
    COALESCE(t.hour_ms, p.hour_ms) AS hour_ms,
    COALESCE(t.family, p.family) AS family,
    COALESCE(t.resource_id, p.resource_id) AS resource_id,
    COALESCE(t.node, p.node) AS node,
    CASE WHEN t.hour_ms IS NOT NULL THEN t.hypervisor ELSE p.hypervisor END AS hypervisor,
    COALESCE(t.cpu, p.cpu) AS cpu,
    COALESCE(t.mem_bytes, p.mem_bytes) AS mem_bytes,
    COALESCE(t.storage_bytes, p.storage_bytes) AS storage_bytes,
    t.ms AS new_ms,
    p.hour_ms IS NOT NULL AS was_published,
    p.ms AS pub_ms,
    p.version AS pub_version,
    p.revises AS pub_revises,
    p.previous_ms AS pub_previous_ms
  FROM {{totals}} AS t
  FULL OUTER JOIN published AS p
    ON t.hour_ms = p.hour_ms AND t.family = p.family AND t.resource_id = p.resource_id AND t.node = p.node
    AND t.hypervisor IS NOT DISTINCT FROM p.hypervisor AND t.cpu = p.cpu AND t.mem_bytes = p.mem_bytes AND t.storage_bytes = p.storage_bytes
),
staged AS (
  SELECT
    j.*,
    (w.previous_watermark_ms IS NOT NULL AND j.hour_ms + 3600000 <= w.previous_watermark_ms) AS was_final,
    CASE
      WHEN j.new_ms IS NULL THEN 'withdrawn'
      WHEN j.hour_ms + 3600000 > w.watermark_ms THEN 'provisional'
      WHEN NOT j.was_published THEN 'new'
      WHEN j.pub_ms <> j.new_ms THEN 'changed'
      ELSE 'unchanged'
    END AS status
  FROM joined AS j
  CROSS JOIN {{watermark}} AS w
)
SELECT
  hour_ms, family, resource_id, node, hypervisor, cpu, mem_bytes, storage_bytes,
  COALESCE(new_ms, 0) AS ms,
  status <> 'provisional' AS final,
  CASE
    WHEN status = 'provisional' THEN 0
    WHEN status = 'new' THEN 1
    WHEN status = 'changed' OR (status = 'withdrawn' AND pub_ms <> 0) THEN pub_version + 1
    ELSE pub_version
  END AS version,
  CASE
    WHEN status = 'provisional' THEN CAST(NULL AS BIGINT)
    WHEN status = 'new' THEN CASE WHEN was_final THEN 0 END
    WHEN status = 'changed' OR (status = 'withdrawn' AND pub_ms <> 0) THEN pub_version
    ELSE pub_revises
  END AS revises,
  CASE
    WHEN status = 'provisional' THEN CAST(NULL AS BIGINT)
    WHEN status = 'new' THEN CASE WHEN was_final THEN 0 END
    WHEN status = 'changed' OR (status = 'withdrawn' AND pub_ms <> 0) THEN pub_ms
    ELSE pub_previous_ms
  END AS previous_ms,
  -- Emitted as a revision by this run (revisions/, append-only).
  ((status = 'new' AND was_final) OR status = 'changed' OR (status = 'withdrawn' AND pub_ms <> 0)) AS is_revision
FROM staged;

-- The output partitions (by hour's day) that change: rows that came, went or changed in the
-- dirty ranges, and provisional rows elsewhere that the watermark made final.
INSERT INTO {{changed_days}} (output, day_ms)
SELECT DISTINCT 'hourly', @idiv(hour_ms, 86400000) * 86400000
FROM (
  SELECT * FROM (
    SELECT hour_ms, family, resource_id, node, hypervisor, cpu, mem_bytes, storage_bytes, ms, final, version, revises, previous_ms FROM {{hourly_old}}
    EXCEPT DISTINCT
    SELECT hour_ms, family, resource_id, node, hypervisor, cpu, mem_bytes, storage_bytes, ms, final, version, revises, previous_ms FROM {{publication}}
  ) AS gone
  UNION ALL
  SELECT * FROM (
    SELECT hour_ms, family, resource_id, node, hypervisor, cpu, mem_bytes, storage_bytes, ms, final, version, revises, previous_ms FROM {{publication}}
    EXCEPT DISTINCT
    SELECT hour_ms, family, resource_id, node, hypervisor, cpu, mem_bytes, storage_bytes, ms, final, version, revises, previous_ms FROM {{hourly_old}}
  ) AS came
  UNION ALL
  SELECT h.hour_ms, h.family, h.resource_id, h.node, h.hypervisor, h.cpu, h.mem_bytes, h.storage_bytes, h.ms, h.final, h.version, h.revises, h.previous_ms
  FROM {{hourly}} AS h
  CROSS JOIN {{watermark}} AS w
  WHERE NOT h.final AND h.hour_ms + 3600000 <= w.watermark_ms
) AS d;

INSERT INTO {{revisions}} (run, ord, hour_ms, family, resource_id, node, hypervisor, cpu, mem_bytes, storage_bytes, ms, version, revises, previous_ms)
SELECT
  {{$run}},
  ROW_NUMBER() OVER (ORDER BY hour_ms, family, resource_id, node, hypervisor NULLS FIRST, cpu, mem_bytes, storage_bytes),
  hour_ms, family, resource_id, node, hypervisor, cpu, mem_bytes, storage_bytes, ms, version, revises, previous_ms
FROM {{publication}}
WHERE is_revision;

MERGE INTO {{hourly}} AS h
USING {{dirty}} AS d
ON d.family = h.family AND d.resource_id = h.resource_id AND h.hour_ms >= d.dirty_hour
WHEN MATCHED THEN DELETE;

-- Final rows first, then the provisional ones (the next run's dirty hours) in a statement of their
-- own: deletes then fall together, not in every vector of the history (60_intervals.sql).
INSERT INTO {{hourly}} (hour_ms, family, resource_id, node, hypervisor, cpu, mem_bytes, storage_bytes, ms, final, version, revises, previous_ms)
SELECT hour_ms, family, resource_id, node, hypervisor, cpu, mem_bytes, storage_bytes, ms, final, version, revises, previous_ms
FROM {{publication}}
WHERE final;

INSERT INTO {{hourly}} (hour_ms, family, resource_id, node, hypervisor, cpu, mem_bytes, storage_bytes, ms, final, version, revises, previous_ms)
SELECT hour_ms, family, resource_id, node, hypervisor, cpu, mem_bytes, storage_bytes, ms, final, version, revises, previous_ms
FROM {{publication}}
WHERE NOT final;

-- A provisional row whose hour the watermark passed, its value unchanged: published, version 1.
UPDATE {{hourly}}
SET final = TRUE, version = 1
WHERE NOT final AND hour_ms + 3600000 <= (SELECT watermark_ms FROM {{watermark}});
