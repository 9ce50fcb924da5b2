-- DuckDB twin of sink/sql/bigquery/03_hourly.sql: intervals split exactly into UTC hours, integer ms.
-- A closed interval counts to its end, an open one to the watermark; hours wholly before the
-- watermark are final.
CREATE OR REPLACE TABLE metering_hourly AS
WITH w AS (SELECT watermark_ms FROM metering_watermark),
billed AS (
  SELECT i.*, COALESCE(i.end_ms, w.watermark_ms) AS bill_end_ms
  FROM metering_intervals i CROSS JOIN w
),
slices AS (
  SELECT b.*, unnest(range((b.start_ms // 3600000) * 3600000, b.bill_end_ms, 3600000)) AS hour_ms
  FROM billed b
  WHERE b.bill_end_ms > b.start_ms
)
SELECT
  hour_ms,
  family, resource_id, node, hypervisor, cpu, mem_bytes, storage_bytes,
  SUM(LEAST(bill_end_ms, hour_ms + 3600000) - GREATEST(start_ms, hour_ms)) AS ms,
  hour_ms + 3600000 <= ANY_VALUE(w.watermark_ms) AS final
FROM slices CROSS JOIN w
GROUP BY hour_ms, family, resource_id, node, hypervisor, cpu, mem_bytes, storage_bytes
HAVING SUM(LEAST(bill_end_ms, hour_ms + 3600000) - GREATEST(start_ms, hour_ms)) > 0;
