-- Every resource's billable events through contract v2's machine: tie groups, handoffs, handoff
-- stops (sink/consumer/timeline-fold.ts, the one definition, as the metering_fold UDF). The whole
-- history of a resource is one array: its size bounds the memory of one UDF call (see docs/sql.md).
-- Resource: (family, vm_id or snapshot_id); events in the fold's order (emitted_at, node, writer, seq, id).
CREATE OR REPLACE TABLE {{folds}} AS
SELECT
  family,
  resource_id,
  metering_fold(ARRAY_AGG(@struct(
    id AS id, CAST(t AS {{FLOAT}}) AS t, obj_node AS node, writer AS writer, CAST(seq AS {{FLOAT}}) AS seq,
    phase AS phase, reason AS reason, hypervisor AS hypervisor, CAST(cpu AS {{FLOAT}}) AS cpu,
    CAST(mem_bytes AS {{FLOAT}}) AS mem_bytes, CAST(storage_bytes AS {{FLOAT}}) AS storage_bytes
  ) ORDER BY t, obj_node, writer, seq, id)) AS folded
FROM {{kept}}
WHERE billable
GROUP BY family, resource_id;

CREATE OR REPLACE TABLE {{fold_intervals}} AS
SELECT
  f.family,
  f.resource_id,
  iv.node,
  iv.hypervisor,
  CAST(iv.cpu AS BIGINT) AS cpu,
  CAST(iv.mem_bytes AS BIGINT) AS mem_bytes,
  CAST(iv.storage_bytes AS BIGINT) AS storage_bytes,
  CAST(iv.start_ms AS BIGINT) AS start_ms,
  CAST(iv.end_ms AS BIGINT) AS end_ms,
  iv.open_reason,
  iv.close_reason,
  iv.baseline,
  iv.start_event_id,
  iv.end_event_id,
  CAST(iv.last_evidence_ms AS BIGINT) AS last_evidence_ms
FROM {{folds}} AS f
CROSS JOIN @unnest(f.folded.intervals, iv);

-- Reported, never billed: duplicate starts, duplicate and orphan stops, handoff stops.
CREATE OR REPLACE TABLE {{anomalies}} AS
SELECT f.family, f.resource_id, a.anomaly_type, a.event_id, a.node, CAST(a.t_ms AS BIGINT) AS t
FROM {{folds}} AS f
CROSS JOIN @unnest(f.folded.anomalies, a);
