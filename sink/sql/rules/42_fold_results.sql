-- The fold steps' rows (30_resources.sql, fold_rows) by kind: the intervals, the anomalies and the
-- state each folded resource ends in.
CREATE OR REPLACE TABLE {{fold_new_intervals}} AS SELECT * FROM {{fold_intervals}} WHERE FALSE;

INSERT INTO {{fold_new_intervals}} (family, resource_id, node, hypervisor, cpu, mem_bytes, storage_bytes, start_ms, end_ms, open_reason, close_reason, baseline, start_event_id, end_event_id, last_evidence_ms)
SELECT family, resource_id, node, hypervisor, cpu, mem_bytes, storage_bytes, start_ms, end_ms, open_reason, close_reason, baseline, start_event_id, end_event_id, last_evidence_ms
FROM {{fold_rows}}
WHERE kind = 'interval';

-- Reported, never billed: duplicate starts, duplicate and orphan stops, handoff stops.
CREATE OR REPLACE TABLE {{fold_new_anomalies}} AS SELECT * FROM {{anomalies}} WHERE FALSE;

INSERT INTO {{fold_new_anomalies}} (family, resource_id, anomaly_type, event_id, node, t)
SELECT family, resource_id, anomaly_type, event_id, node, t
FROM {{fold_rows}}
WHERE kind = 'anomaly';

CREATE OR REPLACE TABLE {{fold_new_state}} AS SELECT * FROM {{resource_state}} WHERE FALSE;

INSERT INTO {{fold_new_state}} (family, resource_id, last_t, handed_from, last_was_stop)
SELECT family, resource_id, last_t, handed_from, last_was_stop
FROM {{fold_rows}}
WHERE kind = 'state';
