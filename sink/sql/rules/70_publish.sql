-- Publication against the stored published rows (docs/consumer.md, "Publication and revisions"):
-- an hour wholly before the watermark is final; a final row is version 1 the first time, and every
-- later change (a new value, a withdrawal to 0, a row appearing in an hour already final) is a new
-- version revising the previous one. Unchanged final rows keep their version forever.
CREATE OR REPLACE TABLE {{publication}} AS
WITH joined AS (
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
  FULL OUTER JOIN {{published}} AS p
    ON t.hour_ms = p.hour_ms AND t.family = p.family AND t.resource_id = p.resource_id AND t.node = p.node
    AND t.hypervisor IS NOT DISTINCT FROM p.hypervisor AND t.cpu = p.cpu AND t.mem_bytes = p.mem_bytes AND t.storage_bytes = p.storage_bytes
),
staged AS (
  SELECT
    j.*,
    j.hour_ms + 3600000 <= w.watermark_ms AS is_final,
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
  -- Emitted as a revision by this run (revisions.ndjson, append-only).
  ((status = 'new' AND was_final) OR status = 'changed' OR (status = 'withdrawn' AND pub_ms <> 0)) AS is_revision
FROM staged;
