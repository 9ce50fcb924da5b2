/**
 * `01_external_tables.sql` for one source and dataset: the file is written for people (BUCKET,
 * PREFIX and the dataset `metering` as placeholders); this renders it with the real names so the
 * BigQuery engine creates (or refreshes) the external tables of the bucket it reads. CREATE SCHEMA
 * is left out: the engine requires the dataset to exist, in the location the operator chose.
 */
import * as fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { normalizePrefix } from '../../layout.js';

const FILE_CANDIDATES = [
  new URL('./01_external_tables.sql', import.meta.url), // sources (sink/sql/bigquery/)
  new URL('../../../../sink/sql/bigquery/01_external_tables.sql', import.meta.url), // built (dist/sink/sql/bigquery/)
];

function externalTablesFile(): string {
  for (const url of FILE_CANDIDATES) {
    const file = fileURLToPath(url);
    if (fs.existsSync(file)) return fs.readFileSync(file, 'utf8');
  }
  throw new Error(`metering: 01_external_tables.sql is missing (looked in ${FILE_CANDIDATES.map((u) => fileURLToPath(u)).join(', ')})`);
}

export interface ExternalTablesTarget {
  bucket: string;
  /** Object-name prefix of the shippers' --dest inside the bucket ('' for the bucket's root). */
  prefix: string;
  /** `project.dataset`. */
  dataset: string;
}

// What may stand inside a quoted gs:// URI and a backquoted name without escaping: checked, never quoted.
const BUCKET_RE = /^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$/;
const PREFIX_RE = /^[A-Za-z0-9._=\-/]*$/;
const DATASET_RE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_]+$/;

/** `gs://bucket/prefix` (no trailing slash), checked so it can stand inside a SQL string. */
export function sourceUri(bucket: string, prefix: string): string {
  if (!BUCKET_RE.test(bucket)) throw new Error(`GCS bucket name ${JSON.stringify(bucket)} cannot be used in BigQuery table definitions`);
  const p = normalizePrefix(prefix);
  if (!PREFIX_RE.test(p)) throw new Error(`source prefix ${JSON.stringify(p)} has characters the BigQuery engine does not put into a URI (use letters, digits, '.', '_', '-', '=', '/')`);
  return p ? `gs://${bucket}/${p}` : `gs://${bucket}`;
}

/** The statements of 01_external_tables.sql for this source and dataset, in file order, CREATE SCHEMA left out. */
export function renderExternalTables(target: ExternalTablesTarget): string[] {
  if (!DATASET_RE.test(target.dataset)) throw new Error(`BigQuery dataset must look like project.dataset, got ${JSON.stringify(target.dataset)}`);
  const uri = sourceUri(target.bucket, target.prefix);
  const text = externalTablesFile()
    .replaceAll('gs://BUCKET/PREFIX', uri)
    .replace(/\bmetering\.([a-z_][a-z0-9_]*)\b/g, (_, table: string) => `\`${target.dataset}.${table}\``);
  const statements = text
    .split(/;[ \t]*(?:\r?\n|$)/)
    .map((s) => s.split('\n').filter((line) => !line.trim().startsWith('--')).join('\n').trim())
    .filter((s) => s !== '' && !/^CREATE SCHEMA\b/i.test(s));
  for (const s of statements) {
    if (s.includes('gs://BUCKET') || /(?<![`\w.-])metering\.[a-z_]/.test(s)) throw new Error(`internal: 01_external_tables.sql left a placeholder: ${s.slice(0, 120)}`);
  }
  return statements;
}
