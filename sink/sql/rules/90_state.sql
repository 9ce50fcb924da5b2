-- What the next run stands on, written last: each node's last usable progress, and this run's
-- watermark and horizon (a run that holds the watermark passes on the previous run's, unchanged:
-- the next chunk of the backlog stands where this one stood). The staged copies are merged into
-- entries: drop them.
CREATE OR REPLACE TABLE {{node_known}} AS
SELECT node, reported_ms, complete_ms, backlog_bytes, current_updated_ms AS updated_ms
FROM {{nodes}}
WHERE has_current;

UPDATE {{runs}}
SET
  watermark_ms = CASE WHEN {{$hold_watermark}} = 1 THEN previous_watermark_ms ELSE (SELECT watermark_ms FROM {{watermark}}) END,
  watermark_computed_ms = (SELECT computed_ms FROM {{watermark}}),
  horizon_ms = CASE
    WHEN {{$hold_watermark}} = 1 THEN (SELECT MAX(p.horizon_ms) FROM {{runs}} AS p WHERE p.run = {{$run}} - 1)
    ELSE (SELECT watermark_ms FROM {{watermark}}) - {{$retain_ms}}
  END
WHERE run = {{$run}};

DELETE FROM {{entries_new}} WHERE TRUE;

-- Final hours a held run did not recompute wait for the next run that does not hold; that run took
-- them into its dirty ranges (60_intervals.sql).
INSERT INTO {{pending_dirty}} (family, resource_id, dirty_hour)
SELECT family, resource_id, found_hour FROM {{dirty}} WHERE {{$hold_watermark}} = 1 AND found_hour < dirty_hour;

DELETE FROM {{pending_dirty}} WHERE {{$hold_watermark}} = 0;
