-- State schema v2 -> v3, run once, in the run's transaction, by the first run on a v2 state (the
-- DuckDB engine: metering_meta says 2; BigQuery: `entries` still has a v2 column). v2 kept every
-- column of every copy in {{entries}}: a 100 M entry history carried a second whole copy of each
-- line beside {{kept}}. v3 keeps (run, object, line_offset, digest, id); the rest is dropped here.
ALTER TABLE {{entries}} DROP COLUMN IF EXISTS obj_node;
ALTER TABLE {{entries}} DROP COLUMN IF EXISTS seg_created_ms;
ALTER TABLE {{entries}} DROP COLUMN IF EXISTS entry_node;
ALTER TABLE {{entries}} DROP COLUMN IF EXISTS writer;
ALTER TABLE {{entries}} DROP COLUMN IF EXISTS seq;
ALTER TABLE {{entries}} DROP COLUMN IF EXISTS kind;
ALTER TABLE {{entries}} DROP COLUMN IF EXISTS resource_id;
ALTER TABLE {{entries}} DROP COLUMN IF EXISTS reason;
ALTER TABLE {{entries}} DROP COLUMN IF EXISTS hypervisor;
ALTER TABLE {{entries}} DROP COLUMN IF EXISTS cpu;
ALTER TABLE {{entries}} DROP COLUMN IF EXISTS mem_bytes;
ALTER TABLE {{entries}} DROP COLUMN IF EXISTS storage_bytes;
ALTER TABLE {{entries}} DROP COLUMN IF EXISTS t;
ALTER TABLE {{entries}} DROP COLUMN IF EXISTS emitted_at;
-- v2's scratch table of the copies of touched ids, whole (20_kept.sql has a view now).
DROP TABLE IF EXISTS {{touched_copies}};
