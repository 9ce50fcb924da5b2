-- A run stands on the previous run: its watermark (what was final) and its horizon (watermark -
-- retain). Every id this run reads first "arrives" with these facts; they decide late and too late.
-- After a migration (run 0 says next_rereads) the first run re-reads what was read before: its
-- ids arrive with no facts, as they were judged when first read. A run that holds the watermark (a
-- chunk of a backlog with more to come) passes that on too: the next chunk re-reads as it did.
DELETE FROM {{runs}} WHERE run >= {{$run}};

INSERT INTO {{runs}} (run, now_ms, previous_watermark_ms, arrival_watermark_ms, arrival_horizon_ms, next_rereads)
SELECT
  {{$run}},
  {{$now_ms}},
  MAX(p.watermark_ms),
  CASE WHEN MAX(CASE WHEN p.next_rereads THEN 1 ELSE 0 END) = 1 THEN NULL ELSE MAX(p.watermark_ms) END,
  CASE WHEN MAX(CASE WHEN p.next_rereads THEN 1 ELSE 0 END) = 1 THEN NULL ELSE MAX(p.horizon_ms) END,
  ({{$hold_watermark}} = 1 AND MAX(CASE WHEN p.next_rereads THEN 1 ELSE 0 END) = 1)
FROM (SELECT 1 AS one) AS x
LEFT JOIN {{runs}} AS p ON p.run = {{$run}} - 1;
