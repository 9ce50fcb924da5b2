-- The fold steps' results replace what they were folded from: all of a resource folded again, the
-- open interval of one resumed (its continuation comes back as the first interval of its fold).
DELETE FROM {{fold_intervals}} AS i
WHERE EXISTS (
  SELECT 1 FROM {{affected}} AS a
  WHERE a.family = i.family AND a.resource_id = i.resource_id AND (NOT a.resume OR i.end_ms IS NULL)
);

INSERT INTO {{fold_intervals}} SELECT * FROM {{fold_new_intervals}};

DELETE FROM {{anomalies}} AS x
WHERE EXISTS (SELECT 1 FROM {{affected}} AS a WHERE a.family = x.family AND a.resource_id = x.resource_id AND NOT a.resume);

INSERT INTO {{anomalies}} SELECT * FROM {{fold_new_anomalies}};

DELETE FROM {{resource_state}} AS s
WHERE EXISTS (SELECT 1 FROM {{affected}} AS a WHERE a.family = s.family AND a.resource_id = s.resource_id);

INSERT INTO {{resource_state}} SELECT * FROM {{fold_new_state}};
