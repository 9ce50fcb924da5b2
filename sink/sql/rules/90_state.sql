-- What the next run stands on, written last: the published rows, the revisions (appended), each
-- node's last usable progress, and this run's watermark and horizon.
CREATE OR REPLACE TABLE {{published}} AS
SELECT hour_ms, family, resource_id, node, hypervisor, cpu, mem_bytes, storage_bytes, ms, version, revises, previous_ms
FROM {{publication}}
WHERE final;

INSERT INTO {{revisions}} (run, ord, hour_ms, family, resource_id, node, hypervisor, cpu, mem_bytes, storage_bytes, ms, version, revises, previous_ms)
SELECT
  {{$run}},
  ROW_NUMBER() OVER (ORDER BY hour_ms, family, resource_id, node, hypervisor NULLS FIRST, cpu, mem_bytes, storage_bytes),
  hour_ms, family, resource_id, node, hypervisor, cpu, mem_bytes, storage_bytes, ms, version, revises, previous_ms
FROM {{publication}}
WHERE is_revision;

CREATE OR REPLACE TABLE {{node_known}} AS
SELECT node, reported_ms, complete_ms, backlog_bytes, current_updated_ms AS updated_ms
FROM {{nodes}}
WHERE has_current;

UPDATE {{runs}}
SET
  watermark_ms = (SELECT watermark_ms FROM {{watermark}}),
  watermark_computed_ms = (SELECT computed_ms FROM {{watermark}}),
  horizon_ms = (SELECT watermark_ms FROM {{watermark}}) - {{$retain_ms}}
WHERE run = {{$run}};
