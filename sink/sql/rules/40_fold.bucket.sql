-- One fold step (run once per bucket, {{$bucket}} = 0, 1, ...): every resource of the bucket
-- through contract v2's machine, from where it stood (sink/consumer/timeline-fold.ts, the one
-- definition, as the metering_fold UDF). Events in the fold's order (emitted_at, node, writer, seq, id).
CREATE OR REPLACE TABLE {{fold_step}} AS
SELECT
  g.family,
  g.resource_id,
  g.last_t,
  metering_fold(s.state, g.events) AS folded
FROM (
  SELECT
    family,
    resource_id,
    MAX(t) AS last_t,
    ARRAY_AGG(@struct(
      id AS id, CAST(t AS {{FLOAT}}) AS t, obj_node AS node, writer AS writer, CAST(seq AS {{FLOAT}}) AS seq,
      phase AS phase, reason AS reason, hypervisor AS hypervisor, CAST(cpu AS {{FLOAT}}) AS cpu,
      CAST(mem_bytes AS {{FLOAT}}) AS mem_bytes, CAST(storage_bytes AS {{FLOAT}}) AS storage_bytes
    ) ORDER BY t, obj_node, writer, seq, id) AS events
  FROM {{fold_input}}
  WHERE bucket = {{$bucket}}
  GROUP BY family, resource_id
) AS g
JOIN {{fold_start}} AS s ON s.family = g.family AND s.resource_id = g.resource_id AND s.bucket = {{$bucket}};

INSERT INTO {{fold_new_intervals}} (family, resource_id, node, hypervisor, cpu, mem_bytes, storage_bytes, start_ms, end_ms, open_reason, close_reason, baseline, start_event_id, end_event_id, last_evidence_ms)
SELECT
  f.family,
  f.resource_id,
  iv.node,
  iv.hypervisor,
  CAST(iv.cpu AS BIGINT),
  CAST(iv.mem_bytes AS BIGINT),
  CAST(iv.storage_bytes AS BIGINT),
  CAST(iv.start_ms AS BIGINT),
  CAST(iv.end_ms AS BIGINT),
  iv.open_reason,
  iv.close_reason,
  iv.baseline,
  iv.start_event_id,
  iv.end_event_id,
  CAST(iv.last_evidence_ms AS BIGINT)
FROM {{fold_step}} AS f
CROSS JOIN @unnest(f.folded.intervals, iv);

-- Reported, never billed: duplicate starts, duplicate and orphan stops, handoff stops.
INSERT INTO {{fold_new_anomalies}} (family, resource_id, anomaly_type, event_id, node, t)
SELECT f.family, f.resource_id, a.anomaly_type, a.event_id, a.node, CAST(a.t_ms AS BIGINT)
FROM {{fold_step}} AS f
CROSS JOIN @unnest(f.folded.anomalies, a);

INSERT INTO {{fold_new_state}} (family, resource_id, last_t, handed_from, last_was_stop)
SELECT f.family, f.resource_id, f.last_t, f.folded.state.handed_from, f.folded.state.last_was_stop
FROM {{fold_step}} AS f;
