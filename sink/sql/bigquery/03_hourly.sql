-- BigQuery: intervals split exactly into UTC hours, integer ms (twin: sink/sql/duckdb/03_hourly.sql).
-- Run after 02_intervals.sql. A closed interval counts to its end, an open one to the watermark;
-- hours wholly before the watermark are final. Bill with exact integers: cpu * ms, bytes * ms.
CREATE OR REPLACE TABLE metering.hourly AS
WITH w AS (SELECT watermark_ms FROM metering.watermark),
billed AS (
  SELECT i.*, COALESCE(i.end_ms, w.watermark_ms) AS bill_end_ms
  FROM metering.intervals i CROSS JOIN w
),
slices AS (
  SELECT b.*, hour_ms
  FROM billed b
  CROSS JOIN UNNEST(GENERATE_ARRAY(DIV(b.start_ms, 3600000) * 3600000, b.bill_end_ms - 1, 3600000)) AS hour_ms
  WHERE b.bill_end_ms > b.start_ms
)
SELECT
  TIMESTAMP_MILLIS(hour_ms) AS hour,
  hour_ms,
  family, resource_id, node, hypervisor, cpu, mem_bytes, storage_bytes,
  SUM(LEAST(bill_end_ms, hour_ms + 3600000) - GREATEST(start_ms, hour_ms)) AS ms,
  hour_ms + 3600000 <= ANY_VALUE(w.watermark_ms) AS final
FROM slices CROSS JOIN w
GROUP BY hour_ms, family, resource_id, node, hypervisor, cpu, mem_bytes, storage_bytes
HAVING SUM(LEAST(bill_end_ms, hour_ms + 3600000) - GREATEST(start_ms, hour_ms)) > 0;

-- Usage per resource over a range (exact: NUMERIC keeps the integer products whole):
-- SELECT resource_id,
--   SUM(IF(family = 'vm.compute', CAST(cpu AS NUMERIC) * ms, 0)) / 3600000 AS vcpu_hours,
--   SUM(IF(family = 'vm.compute', CAST(mem_bytes AS BIGNUMERIC) * ms, 0)) / (1073741824 * 3600000) AS mem_gib_hours,
--   SUM(IF(family != 'vm.compute', CAST(storage_bytes AS BIGNUMERIC) * ms, 0)) / (1073741824 * 3600000) AS storage_gib_hours
-- FROM metering.hourly WHERE hour >= '2026-11-01' AND hour < '2026-12-01' GROUP BY resource_id;
