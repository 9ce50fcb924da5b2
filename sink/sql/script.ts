/**
 * The rules as one script a person can run by hand (`metering sql --dialect duckdb|bigquery`):
 * the state tables, this run's parameters as literals, and for BigQuery the `metering_fold`
 * function, whose body is the TypeScript fold itself.
 */
import { bigQueryFoldFunction } from './fold-udf.js';
import { renderRules, type Dialect, type RenderOptions, type RuleParams } from './render.js';

export function renderSqlScript(dialect: Dialect, params: RuleParams, options: RenderOptions = {}): string {
  const header = [
    `-- metering-ledger billing rules (contract v2), rendered for ${dialect === 'duckdb' ? 'DuckDB' : 'BigQuery'} from sink/sql/rules.`,
    `-- Run ${params.run}: now_ms=${params.now_ms} grace_ms=${params.grace_ms} stale_after_ms=${params.stale_after_ms} retain_ms=${params.retain_ms} max_skew_ms=${params.max_skew_ms}`,
    dialect === 'duckdb'
      ? '-- metering_fold is a JavaScript scalar function: run this on a connection where metering registered it (see docs/sql.md).'
      : '-- Inputs: the state tables below, filled with this run\'s entries, node reads and writer progress (see docs/sql.md).',
    '',
  ];
  const parts = [header.join('\n')];
  if (dialect === 'bigquery') parts.push(bigQueryFoldFunction());
  let file = '';
  for (const s of renderRules(dialect, params, options)) {
    if (s.file !== file) {
      parts.push(
        s.perBucket
          ? `-- ${s.file}: once per fold bucket, bucket ${params.bucket ?? 0} shown (how many: SELECT buckets FROM the fold_buckets table; with bucket_events above the run's event count there is one)`
          : `-- ${s.file}`,
      );
      file = s.file;
    }
    parts.push(`${s.sql};`);
  }
  return parts.join('\n\n') + '\n';
}
