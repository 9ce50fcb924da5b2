/**
 * One SQL source, two dialects. The billing rules are written once, in sink/sql/rules/*.sql, in the
 * SQL that DuckDB and BigQuery share, plus a few tokens for what they spell differently; this module
 * renders them for either engine. Nothing else builds SQL for the rules, so the dialects cannot drift.
 *
 * Tokens:
 *   {{name}}          a table of the engine: `metering_name` (DuckDB, one database file) or
 *                     `dataset.name` (BigQuery)
 *   {{$param}}        a run parameter, rendered as a validated integer literal
 *   {{FLOAT}}         DOUBLE / FLOAT64 (what the JavaScript fold takes: BigQuery JS UDFs refuse INT64)
 *   @struct(e AS n, ...)   struct_pack(n := e, ...) / STRUCT(e AS n, ...)
 *   @idiv(a, b)       integer division: (a) // (b) / DIV(a, b)
 *   @range(a, b, s)   the integers a, a+s, ... below b: range(a, b, s) / GENERATE_ARRAY(a, b - 1, s)
 *   @unnest(list, x)  a FROM item of the list's elements, named x: UNNEST(list) AS _x(x) / UNNEST(list) AS x
 *
 * Types the two share are spelled the same everywhere: BIGINT, STRING and BOOL are accepted by both.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

export type Dialect = 'duckdb' | 'bigquery';
export const DIALECTS: readonly Dialect[] = ['duckdb', 'bigquery'];

/** The parameters of one run of the rules (epoch ms and durations in ms). */
export interface RuleParams {
  /** The consumer's clock: the one trusted clock. */
  now_ms: number;
  grace_ms: number;
  stale_after_ms: number;
  retain_ms: number;
  max_skew_ms: number;
  /**
   * This run's number (1, 2, ...): the entries it read carry it, and so do the revisions it emits.
   * What it stands on (the previous watermark and horizon) is read from the previous run's row.
   */
  run: number;
  /**
   * The fold step a `*.bucket.sql` file is rendered for (0, 1, ...). Such a file runs once per
   * bucket of resources (30_resources.sql leaves how many in `fold_buckets`). Default 0.
   */
  bucket?: number;
  /** About how many events a fold bucket holds (bounds the memory of one fold step). Default 200 000. */
  bucket_events?: number;
  /**
   * 1: a run of a backlog read in chunks with more to come (listed objects it has not read). It
   * holds the watermark where the previous run left it and passes on what the next run stands on
   * unchanged, so that no hour turns final before the whole backlog is in. Default 0.
   */
  hold_watermark?: number;
}

export const DEFAULT_BUCKET_EVENTS = 200_000;

export interface RenderOptions {
  /** BigQuery dataset (`project.dataset` or `dataset`). Default `metering`. */
  dataset?: string;
}

export interface RenderedStatement {
  /** The rules file it comes from (e.g. `50_nodes.sql`). */
  file: string;
  sql: string;
  /** From a `*.bucket.sql` file: run once per fold bucket, rendered with that bucket (renderFile). */
  perBucket: boolean;
}

/** Files whose statements run once per fold bucket. */
export const isBucketFile = (file: string): boolean => file.endsWith('.bucket.sql');

/** A directory of sink/sql, from the sources (sink/sql/render.ts) or the build (dist/sink/sql/render.js; the package ships sink/sql). */
function sqlDir(name: 'rules' | 'migrations'): string {
  const candidates = [new URL(`./${name}/`, import.meta.url), new URL(`../../../sink/sql/${name}/`, import.meta.url)];
  for (const url of candidates) {
    const dir = fileURLToPath(url);
    if (fs.existsSync(dir)) return dir;
  }
  throw new Error(`metering: the SQL ${name} directory is missing (looked in ${candidates.map((u) => fileURLToPath(u)).join(', ')})`);
}

const rulesDir = (): string => sqlDir('rules');

/** The rules files in execution order. */
export function ruleFiles(): { file: string; text: string }[] {
  const dir = rulesDir();
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.sql'))
    .sort()
    .map((file) => ({ file, text: fs.readFileSync(dir + file, 'utf8') }));
}

const PARAM_NAMES = ['now_ms', 'grace_ms', 'stale_after_ms', 'retain_ms', 'max_skew_ms', 'run', 'bucket', 'bucket_events', 'hold_watermark'] as const;

/** Every parameter as an integer literal: a rendered script never carries text from outside. */
function literals(params: RuleParams): Record<string, string> {
  const p: Required<RuleParams> = { bucket: 0, bucket_events: DEFAULT_BUCKET_EVENTS, hold_watermark: 0, ...params };
  const out: Record<string, string> = {};
  for (const name of PARAM_NAMES) {
    const v: unknown = p[name];
    if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw new Error(`SQL parameter ${name} must be a safe integer, got ${String(v)}`);
    const min = name === 'run' || name === 'bucket_events' ? 1 : 0;
    if (v < min) throw new Error(`SQL parameter ${name} must be ${min === 1 ? 'at least 1' : 'non-negative'}, got ${v}`);
    if (name === 'hold_watermark' && v > 1) throw new Error(`SQL parameter hold_watermark must be 0 or 1, got ${v}`);
    out[name] = String(v);
  }
  return out;
}

const DATASET_RE = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_]+)?$/;
const TABLE_RE = /^[a-z_][a-z0-9_]*$/;

export function tableName(dialect: Dialect, table: string, options: RenderOptions = {}): string {
  if (!TABLE_RE.test(table)) throw new Error(`bad table token ${table}`);
  if (dialect === 'duckdb') return `metering_${table}`;
  const dataset = options.dataset ?? 'metering';
  if (!DATASET_RE.test(dataset)) throw new Error(`BigQuery dataset must look like project.dataset or dataset, got ${JSON.stringify(dataset)}`);
  return `\`${dataset}.${table}\``;
}

/** Splits a macro's argument text at top-level commas. */
function splitArgs(text: string): string[] {
  const args: string[] = [];
  let depth = 0;
  let quote: string | null = null;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quote) {
      if (c === quote) quote = null;
      continue;
    }
    if (c === "'" || c === '"' || c === '`') quote = c;
    else if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (c === ',' && depth === 0) {
      args.push(text.slice(start, i).trim());
      start = i + 1;
    }
  }
  args.push(text.slice(start).trim());
  return args;
}

type Macro = (dialect: Dialect, args: string[]) => string;

const MACROS: Record<string, Macro> = {
  struct: (d, args) => {
    const fields = args.map((a) => {
      const m = /^([\s\S]+)\s+AS\s+([a-z_][a-z0-9_]*)$/i.exec(a);
      if (!m) throw new Error(`@struct field must be "expr AS name": ${a}`);
      return { expr: m[1]!.trim(), name: m[2]! };
    });
    return d === 'duckdb' ? `struct_pack(${fields.map((f) => `${f.name} := ${f.expr}`).join(', ')})` : `STRUCT(${fields.map((f) => `${f.expr} AS ${f.name}`).join(', ')})`;
  },
  idiv: (d, [a, b]) => (d === 'duckdb' ? `((${a}) // (${b}))` : `DIV(${a}, ${b})`),
  range: (d, [a, b, s]) => (d === 'duckdb' ? `range(${a}, ${b}, ${s})` : `GENERATE_ARRAY(${a}, (${b}) - 1, ${s})`),
  unnest: (d, [list, name]) => {
    if (!name || !TABLE_RE.test(name)) throw new Error(`@unnest needs a name: ${String(name)}`);
    return d === 'duckdb' ? `UNNEST(${list}) AS _${name}(${name})` : `UNNEST(${list}) AS ${name}`;
  },
};

/** Expands @macro(...) calls, innermost arguments first. */
function expandMacros(dialect: Dialect, text: string): string {
  const re = /@([a-z]+)\(/g;
  let out = '';
  let pos = 0;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    if (m.index < pos) continue;
    const macro = MACROS[m[1]!];
    if (!macro) throw new Error(`unknown SQL macro @${m[1]}`);
    let depth = 1;
    let i = re.lastIndex;
    for (; i < text.length && depth > 0; i++) {
      if (text[i] === '(') depth++;
      else if (text[i] === ')') depth--;
    }
    if (depth !== 0) throw new Error(`unbalanced @${m[1]}(`);
    const inner = expandMacros(dialect, text.slice(re.lastIndex, i - 1));
    out += text.slice(pos, m.index) + macro(dialect, splitArgs(inner));
    pos = i;
    re.lastIndex = i;
  }
  return out + text.slice(pos);
}

/** Renders one template for a dialect. */
export function renderTemplate(dialect: Dialect, template: string, params: RuleParams, options: RenderOptions = {}): string {
  const lit = literals(params);
  const withTokens = template.replace(/\{\{(\$?)([A-Za-z_][A-Za-z0-9_]*)\}\}/g, (_, dollar: string, name: string) => {
    if (dollar) {
      const v = lit[name];
      if (v === undefined) throw new Error(`unknown SQL parameter {{$${name}}}`);
      return v;
    }
    if (name === 'FLOAT') return dialect === 'duckdb' ? 'DOUBLE' : 'FLOAT64';
    return tableName(dialect, name, options);
  });
  return expandMacros(dialect, withTokens);
}

/** Splits a rendered file into statements (a statement ends with `;` at the end of a line). */
function statements(text: string): string[] {
  return text
    .split(/;[ \t]*(?:\r?\n|$)/)
    .map((s) => s.trim())
    .filter((s) => s.split('\n').some((line) => line.trim() !== '' && !line.trim().startsWith('--')));
}

/** The rules as statements, in order, for one dialect and one run. */
export function renderRules(dialect: Dialect, params: RuleParams, options: RenderOptions = {}): RenderedStatement[] {
  const out: RenderedStatement[] = [];
  for (const { file, text } of ruleFiles()) for (const sql of statements(renderTemplate(dialect, text, params, options))) out.push({ file, sql, perBucket: isBucketFile(file) });
  return out;
}

/** One rules file's statements (a `*.bucket.sql` file for one bucket: params.bucket). */
export function renderFile(dialect: Dialect, file: string, params: RuleParams, options: RenderOptions = {}): RenderedStatement[] {
  const found = ruleFiles().find((f) => f.file === file);
  if (!found) throw new Error(`no SQL rules file ${file}`);
  return statements(renderTemplate(dialect, found.text, params, options)).map((sql) => ({ file, sql, perBucket: isBucketFile(file) }));
}

/**
 * The statements that migrate a state to schema version `version` from the one before
 * (`sink/sql/migrations/v<version>.sql`). Run once, by the first run on an older state, in its
 * transaction; they take no run parameters.
 */
export function renderMigration(dialect: Dialect, version: number, options: RenderOptions = {}): string[] {
  const file = path.join(sqlDir('migrations'), `v${version}.sql`);
  if (!Number.isSafeInteger(version) || !fs.existsSync(file)) throw new Error(`no state migration to schema version ${version}`);
  return statements(renderTemplate(dialect, fs.readFileSync(file, 'utf8'), { now_ms: 0, grace_ms: 0, stale_after_ms: 0, retain_ms: 0, max_skew_ms: 0, run: 1 }, options));
}
