-- Loss detection: every writer numbers its entries 1, 2, 3...; numbers missing among the kept
-- entries (before the first, between ranges, and after the last up to what the writer's node says
-- it shipped) are gaps. The ranges are kept up to date by 20_kept.sql.
CREATE OR REPLACE TABLE {{seq_gaps}} AS
WITH holes AS (
  SELECT writer, COALESCE(LAG(hi) OVER (PARTITION BY writer ORDER BY lo), 0) + 1 AS gap_lo, lo - 1 AS gap_hi FROM {{seq_ranges}}
  UNION ALL
  SELECT r.writer, MAX(r.hi) + 1 AS gap_lo, MAX(p.last_seq) AS gap_hi
  FROM {{seq_ranges}} AS r
  JOIN {{writer_nodes}} AS w ON w.writer = r.writer
  JOIN {{writer_progress}} AS p ON p.writer = r.writer AND p.node = w.node
  GROUP BY r.writer
)
SELECT h.writer, w.node, h.gap_lo, h.gap_hi
FROM holes AS h
JOIN {{writer_nodes}} AS w ON w.writer = h.writer
WHERE h.gap_hi >= h.gap_lo;
