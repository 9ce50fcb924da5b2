-- DuckDB twin of sink/sql/bigquery/01_external_tables.sql: views over the objects where they lie.
-- ${LEDGER_GLOB}: the ledger objects, e.g. '/bucket/prefix/ledger/*/*/*.ndjson*' (plain and .gz; hive
-- partitions node=/dt= become columns). ${NODES_GLOB}: the progress objects, e.g. '/bucket/prefix/nodes/*.json'.
-- The entry's own `node` field is not read: the partition column says the same (the shipper writes
-- each node's lines under node=<node>), exactly as the BigQuery external table does.

CREATE OR REPLACE VIEW metering_ledger AS
SELECT
  id, node, CAST(dt AS DATE) AS dt, writer, seq, kind, vm_id, snapshot_id, reason, hypervisor, shape,
  epoch_ms(CAST(emitted_at AS TIMESTAMP)) AS t
FROM read_ndjson(
  '${LEDGER_GLOB}',
  hive_partitioning = true,
  hive_types_autocast = false,
  columns = {
    v: 'INTEGER', id: 'VARCHAR', writer: 'VARCHAR', seq: 'BIGINT', kind: 'VARCHAR', vm_id: 'VARCHAR',
    snapshot_id: 'VARCHAR', source_snapshot_id: 'VARCHAR', reason: 'VARCHAR', hypervisor: 'VARCHAR',
    shape: 'STRUCT(cpu BIGINT, mem_bytes BIGINT, storage_bytes BIGINT)', emitted_at: 'VARCHAR'
  }
);

CREATE OR REPLACE VIEW metering_node_progress AS
SELECT
  node,
  epoch_ms(CAST(reported_at AS TIMESTAMP)) AS reported_ms,
  epoch_ms(CAST(complete_through AS TIMESTAMP)) AS complete_ms
FROM read_json('${NODES_GLOB}', format = 'newline_delimited', columns = { node: 'VARCHAR', reported_at: 'VARCHAR', complete_through: 'VARCHAR' });
