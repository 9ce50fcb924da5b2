-- State schema v3 -> v4 (DuckDB), run once, in the run's transaction, by the first run on a v3 state.
-- v3's rules inserted the rows the next run replaces (open intervals, provisional hours) among the
-- rest, so each run's replacements left a deleted row in every vector of the history; DuckDB keeps a
-- 16 KiB delete list for each such vector in memory whenever the table is read (at 100 M entries,
-- ~390 MiB to scan the intervals). v4's rules insert those rows last (60_intervals.sql). The engine
-- renames each of these three tables to <name>_v3 and creates it anew with its own definition; here
-- it is filled again, the replaceable rows last, and the engine drops the old one: a table rebuilt
-- from its live rows has no deleted rows at all. Nothing is re-read or re-published.
INSERT INTO {{fold_intervals}} SELECT * FROM {{fold_intervals}}_v3 WHERE end_ms IS NOT NULL;
INSERT INTO {{fold_intervals}} SELECT * FROM {{fold_intervals}}_v3 WHERE end_ms IS NULL;

INSERT INTO {{intervals}} SELECT * FROM {{intervals}}_v3 WHERE (end_ms IS NULL OR unconfirmed_end) IS NOT TRUE;
INSERT INTO {{intervals}} SELECT * FROM {{intervals}}_v3 WHERE end_ms IS NULL OR unconfirmed_end;

INSERT INTO {{hourly}} SELECT * FROM {{hourly}}_v3 WHERE final;
INSERT INTO {{hourly}} SELECT * FROM {{hourly}}_v3 WHERE NOT final;
