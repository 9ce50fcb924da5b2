-- The fold steps' results replace what they were folded from: all of a resource folded again, the
-- open interval of one resumed (its continuation comes back as the first interval of its fold).
MERGE INTO {{fold_intervals}} AS i
USING {{affected}} AS a
ON a.family = i.family AND a.resource_id = i.resource_id AND (NOT a.resume OR i.end_ms IS NULL)
WHEN MATCHED THEN DELETE;

-- Closed intervals first, then the open ones (the next resume replaces them) in a statement of
-- their own: deletes then fall together, not in every vector of the history (60_intervals.sql).
INSERT INTO {{fold_intervals}} SELECT * FROM {{fold_new_intervals}} WHERE end_ms IS NOT NULL;
INSERT INTO {{fold_intervals}} SELECT * FROM {{fold_new_intervals}} WHERE end_ms IS NULL;

MERGE INTO {{anomalies}} AS x
USING {{affected}} AS a
ON a.family = x.family AND a.resource_id = x.resource_id AND NOT a.resume
WHEN MATCHED THEN DELETE;

INSERT INTO {{anomalies}} SELECT * FROM {{fold_new_anomalies}};

MERGE INTO {{resource_state}} AS s
USING {{affected}} AS a
ON a.family = s.family AND a.resource_id = s.resource_id
WHEN MATCHED THEN DELETE;

INSERT INTO {{resource_state}} SELECT * FROM {{fold_new_state}};
