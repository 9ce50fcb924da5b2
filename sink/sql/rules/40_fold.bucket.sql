-- One fold step (run once per bucket, {{$bucket}} = 0, 1, ...): every resource of the bucket
-- through contract v2's machine, from where it stood (sink/consumer/timeline-fold.ts, the one
-- definition, as the metering_fold UDF). The events go in unordered: metering_fold sorts them into
-- the fold's order (sink/sql/fold-udf.ts, meteringFold; why not ORDER BY in the ARRAY_AGG: there).
-- One statement per step, appending the fold's flat rows to one table (why: 30_resources.sql, fold_rows).
INSERT INTO {{fold_rows}} (kind, family, resource_id, last_t, node, hypervisor, cpu, mem_bytes, storage_bytes, start_ms, end_ms, open_reason, close_reason, baseline, start_event_id, end_event_id, last_evidence_ms, anomaly_type, event_id, t, handed_from, last_was_stop)
SELECT
  r.kind,
  f.family,
  f.resource_id,
  f.last_t,
  r.node,
  r.hypervisor,
  CAST(r.cpu AS BIGINT),
  CAST(r.mem_bytes AS BIGINT),
  CAST(r.storage_bytes AS BIGINT),
  CAST(r.start_ms AS BIGINT),
  CAST(r.end_ms AS BIGINT),
  r.open_reason,
  r.close_reason,
  r.baseline,
  r.start_event_id,
  r.end_event_id,
  CAST(r.last_evidence_ms AS BIGINT),
  r.anomaly_type,
  r.event_id,
  CAST(r.t_ms AS BIGINT),
  r.handed_from,
  r.last_was_stop
FROM (
  SELECT g.family, g.resource_id, g.last_t, metering_fold(s.state, g.events) AS folded
  FROM (
    SELECT
      family,
      resource_id,
      MAX(t) AS last_t,
      ARRAY_AGG(@struct(
        id AS id, CAST(t AS {{FLOAT}}) AS t, obj_node AS node, writer AS writer, CAST(seq AS {{FLOAT}}) AS seq,
        phase AS phase, reason AS reason, hypervisor AS hypervisor, CAST(cpu AS {{FLOAT}}) AS cpu,
        CAST(mem_bytes AS {{FLOAT}}) AS mem_bytes, CAST(storage_bytes AS {{FLOAT}}) AS storage_bytes
      )) AS events
    FROM {{fold_input}}
    WHERE bucket = {{$bucket}}
    GROUP BY family, resource_id
  ) AS g
  JOIN {{fold_start}} AS s ON s.family = g.family AND s.resource_id = g.resource_id AND s.bucket = {{$bucket}}
) AS f
CROSS JOIN @unnest(f.folded, r);
