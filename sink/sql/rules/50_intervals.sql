-- Intervals as billed. One still open on a stale node ends at the last moment there is evidence
-- for: max(last evidence, min(trusted complete_through, now)), flagged unconfirmed_end; when the
-- node comes back, the interval is recomputed from the real events and changed final hours are revisions.
CREATE OR REPLACE TABLE {{intervals}} AS
SELECT
  i.family,
  i.resource_id,
  i.node,
  i.hypervisor,
  i.cpu,
  i.mem_bytes,
  i.storage_bytes,
  i.start_ms,
  CASE
    WHEN i.end_ms IS NOT NULL OR NOT COALESCE(n.stale, FALSE) THEN i.end_ms
    WHEN n.trusted_ms IS NULL THEN i.last_evidence_ms
    ELSE GREATEST(i.last_evidence_ms, LEAST(n.trusted_ms, {{$now_ms}}))
  END AS end_ms,
  i.open_reason,
  CASE WHEN i.end_ms IS NULL AND COALESCE(n.stale, FALSE) THEN 'stale-node' ELSE i.close_reason END AS close_reason,
  i.baseline,
  (i.end_ms IS NULL AND COALESCE(n.stale, FALSE)) AS unconfirmed_end,
  i.start_event_id,
  i.end_event_id
FROM {{fold_intervals}} AS i
LEFT JOIN {{nodes}} AS n ON n.node = i.node;
