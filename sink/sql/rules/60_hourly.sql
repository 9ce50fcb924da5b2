-- Exact hour split: one row per (hour, family, resource, node, hypervisor, shape) with the integer
-- ms of the UTC hour its intervals cover. A closed interval counts to its end, an open one to the
-- watermark; [start, end) pieces sum to end - start.
CREATE OR REPLACE TABLE {{totals}} AS
WITH billed AS (
  SELECT i.*, COALESCE(i.end_ms, w.watermark_ms) AS bill_end_ms
  FROM {{intervals}} AS i
  CROSS JOIN {{watermark}} AS w
  WHERE COALESCE(i.end_ms, w.watermark_ms) > i.start_ms
),
slices AS (
  SELECT b.*, h AS hour_ms
  FROM billed AS b
  CROSS JOIN @unnest(@range(@idiv(b.start_ms, 3600000) * 3600000, b.bill_end_ms, 3600000), h)
)
SELECT
  hour_ms, family, resource_id, node, hypervisor, cpu, mem_bytes, storage_bytes,
  SUM(LEAST(bill_end_ms, hour_ms + 3600000) - GREATEST(start_ms, hour_ms)) AS ms
FROM slices
GROUP BY hour_ms, family, resource_id, node, hypervisor, cpu, mem_bytes, storage_bytes;
