-- A run stands on the previous run: its watermark (what was final) and its horizon (watermark -
-- retain). Every id this run reads first "arrives" with these facts; they decide late and too late.
DELETE FROM {{runs}} WHERE run >= {{$run}};

INSERT INTO {{runs}} (run, now_ms, arrival_watermark_ms, arrival_horizon_ms)
SELECT {{$run}}, {{$now_ms}}, MAX(p.watermark_ms), MAX(p.horizon_ms)
FROM (SELECT 1 AS one) AS x
LEFT JOIN {{runs}} AS p ON p.run = {{$run}} - 1;
