-- What the next run stands on, written last: each node's last usable progress, and this run's
-- watermark and horizon. The staged copies are merged into entries: drop them.
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

DELETE FROM {{entries_new}} WHERE TRUE;
