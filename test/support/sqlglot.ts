/**
 * The BigQuery-dialect parse check the tests share: sqlglot (Debian's python3-sqlglot, run with
 * /usr/bin/python3) through test/support/sqlglot-parse.py, and the way a CREATE EXTERNAL TABLE it
 * cannot parse is checked in parts instead.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { haveTool } from './tools.js';

const PYTHON = '/usr/bin/python3';
const PARSER = fileURLToPath(new URL('./sqlglot-parse.py', import.meta.url));

// .ci/run installs python3-sqlglot and requires it (METERING_REQUIRE_TOOLS=1); elsewhere the parse checks run when it is there.
export const sqlglotAvailable = haveTool(PYTHON, 'python3') && haveTool('/usr/lib/python3/dist-packages/sqlglot/__init__.py', 'python3-sqlglot');

/** One verdict per statement: does sqlglot's bigquery dialect parse it (not as an opaque Command)? */
export function parseBigQuery(statements: string[]): { ok: boolean; error: string | null }[] {
  const r = spawnSync(PYTHON, [PARSER], { input: JSON.stringify(statements), encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`sqlglot parser failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as { ok: boolean; error: string | null }[];
}

/** Splits at top-level commas (outside quotes, brackets, parentheses and angle brackets); parts trimmed. */
export function topLevelCommas(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let quote: string | null = null;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quote) {
      if (c === '\\') i++;
      else if (c === quote) quote = null;
    } else if (c === "'" || c === '"' || c === '`') quote = c;
    else if ('([<'.includes(c)) depth++;
    else if (')]>'.includes(c)) depth--;
    else if (c === ',' && depth === 0) {
      parts.push(text.slice(start, i).trim());
      start = i + 1;
    }
  }
  parts.push(text.slice(start).trim());
  return parts;
}

const EXTERNAL_RE = /^CREATE OR REPLACE EXTERNAL TABLE ([\w.`-]+) \(([\s\S]*?)\)\s*(?:WITH PARTITION COLUMNS \(([\s\S]*?)\)\s*)?OPTIONS \(([\s\S]*)\)$/;

export interface ExternalTableParts {
  /** As written (with its backticks). */
  table: string;
  columns: string;
  /** The WITH PARTITION COLUMNS list, or null. */
  partition: string | null;
  /** key = value, in order (values as written). */
  options: [string, string][];
}

/** A CREATE OR REPLACE EXTERNAL TABLE statement in its parts, or null for any other statement. */
export function externalTableParts(sql: string): ExternalTableParts | null {
  const m = EXTERNAL_RE.exec(sql.trim());
  if (!m) return null;
  const options = topLevelCommas(m[4]!).map((o): [string, string] => {
    const kv = /^([a-z_]+)\s*=\s*([\s\S]+)$/.exec(o);
    if (!kv) throw new Error(`external table option is not key = value: ${o}`);
    return [kv[1]!, kv[2]!.trim()];
  });
  return { table: m[1]!, columns: m[2]!, partition: m[3] ?? null, options };
}

/**
 * sqlglot 10.6 (Debian) knows no CREATE EXTERNAL TABLE and no OPTIONS clause. Such a statement is
 * checked in parts instead: its table and columns (partition columns included) as a CREATE TABLE,
 * and every option's value as a SQL literal. Anything else must parse whole.
 */
export function parseablePieces(sql: string): string[] {
  const t = externalTableParts(sql);
  if (!t) return [sql];
  const columns = [t.columns, t.partition].filter((c): c is string => !!c).join(', ');
  return [`CREATE OR REPLACE TABLE ${t.table} (${columns})`, ...t.options.map(([k, v]) => `SELECT ${v} AS ${k}`)];
}
