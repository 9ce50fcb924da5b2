import { WIRE_VERSION, type EntryInput, type LedgerEntry, type Shape } from './entry.js';
import { describeKind, isReason, REASONS, START_ONLY_REASONS, STOP_ONLY_REASONS } from './kinds.js';

/** Thrown by strict recorders (CaptureRecorder) and by parsers; `reason` says exactly what is wrong. */
export class MeteringValidationError extends Error {
  constructor(readonly reason: string) {
    super(`invalid metering entry: ${reason}`);
    this.name = 'MeteringValidationError';
  }
}

const MAX_ID_LENGTH = 256;
// RFC 3339 with a mandatory zone; fractional seconds optional on input.
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;
// Canonical wire form: UTC, exactly milliseconds.
const WIRE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
// Years outside this range are almost certainly a broken clock or a unit mix-up (seconds vs ms).
const MIN_TIME_MS = Date.UTC(2000, 0, 1);
const MAX_TIME_MS = Date.UTC(2200, 0, 1);

const INPUT_FIELDS = new Set(['kind', 'reason', 'vm_id', 'snapshot_id', 'source_snapshot_id', 'hypervisor', 'shape', 'emitted_at']);
const WIRE_FIELDS = new Set([...INPUT_FIELDS, 'v', 'id', 'node', 'writer', 'seq']);
const SHAPE_FIELDS = ['cpu', 'mem_bytes', 'storage_bytes'] as const;

// eslint-disable-next-line no-control-regex
const CONTROL_CHAR = /[\u0000-\u001f\u007f]/;

function checkIdString(name: string, value: unknown, required: boolean): string | null {
  if (value === undefined) return required ? `${name} is required` : null;
  if (typeof value !== 'string') return `${name} must be a string`;
  if (value.length === 0) return `${name} must not be empty`;
  if (value.length > MAX_ID_LENGTH) return `${name} is longer than ${MAX_ID_LENGTH} characters`;
  if (CONTROL_CHAR.test(value)) return `${name} contains a control character`;
  return null;
}

function checkShape(shape: unknown): string | null {
  if (typeof shape !== 'object' || shape === null || Array.isArray(shape)) return 'shape must be an object {cpu, mem_bytes, storage_bytes}';
  const s = shape as Record<string, unknown>;
  for (const key in s) {
    if (key !== 'cpu' && key !== 'mem_bytes' && key !== 'storage_bytes') return `shape has unknown field ${JSON.stringify(key)}`;
  }
  for (const key of SHAPE_FIELDS) {
    const n = s[key];
    if (n === undefined) return `shape.${key} is required`;
    if (typeof n !== 'number' || !Number.isSafeInteger(n)) return `shape.${key} must be a safe integer, got ${JSON.stringify(n)}`;
    if (n < 0) return `shape.${key} must not be negative, got ${n}`;
  }
  return null;
}

/** Parse a timestamp to epoch ms, or return why it is not acceptable. */
export function parseTimestamp(value: unknown): number | string {
  let ms: number;
  if (value instanceof Date) {
    ms = value.getTime();
  } else if (typeof value === 'string') {
    if (!RFC3339.test(value)) return `emitted_at must be RFC 3339 with a zone, got ${JSON.stringify(value.slice(0, 40))}`;
    ms = Date.parse(value);
  } else {
    return 'emitted_at must be an RFC 3339 string or a Date';
  }
  if (!Number.isFinite(ms)) return 'emitted_at is not a valid time';
  if (ms < MIN_TIME_MS || ms >= MAX_TIME_MS) return `emitted_at ${new Date(ms).toISOString()} is outside years 2000..2199`;
  return ms;
}

/** Fields shared by input and wire validation: kind, reason, ids, shape. */
function checkBody(e: Record<string, unknown>, allowed: Set<string>): string | null {
  // for..in instead of Object.keys: no array allocated on the emit hot path.
  for (const key in e) {
    if (!allowed.has(key)) return `unknown field ${JSON.stringify(key)}`;
  }
  const info = typeof e.kind === 'string' ? describeKind(e.kind) : undefined;
  if (!info) return `unknown kind ${JSON.stringify(e.kind)}`;
  if (!isReason(e.reason)) return `unknown reason ${JSON.stringify(e.reason)}`;
  if (info.phase === 'running' && e.reason !== REASONS.BASELINE) return `${e.kind} must have reason "baseline"`;
  if (info.phase !== 'running' && e.reason === REASONS.BASELINE) return `reason "baseline" is only for *.running kinds`;
  if (info.phase === 'start' && STOP_ONLY_REASONS.has(e.reason)) return `reason "${e.reason}" cannot start an interval`;
  if (info.phase === 'stop' && START_ONLY_REASONS.has(e.reason)) return `reason "${e.reason}" cannot end an interval`;
  const problem =
    checkIdString('vm_id', e.vm_id, info.idField === 'vm_id') ??
    checkIdString('snapshot_id', e.snapshot_id, info.idField === 'snapshot_id') ??
    checkIdString('source_snapshot_id', e.source_snapshot_id, false) ??
    checkIdString('hypervisor', e.hypervisor, false) ??
    checkShape(e.shape);
  return problem;
}

/**
 * Reads what a caller passed to `emit` exactly once into a plain object: each known field once,
 * `shape` and its three numbers once, a Date's time once. Validation and serialisation then see
 * the same values even if the input has getters that change (or throw) or is a Proxy; anything
 * the input throws while being read becomes a MeteringValidationError. Unknown (enumerable) keys
 * are kept by name so validation still reports them.
 */
export function snapshotInput(input: unknown): EntryInput {
  try {
    if (typeof input !== 'object' || input === null) throw new MeteringValidationError('entry must be an object');
    const src = input as Record<string, unknown>;
    // for..in as validation always did: inherited enumerable keys count as fields too.
    for (const key in src) if (!INPUT_FIELDS.has(key)) throw new MeteringValidationError(`unknown field ${JSON.stringify(key)}`);
    // Each field read exactly once (hot path: plain reads into a fixed-shape object).
    const vm_id = src.vm_id;
    const snapshot_id = src.snapshot_id;
    const source_snapshot_id = src.source_snapshot_id;
    const hypervisor = src.hypervisor;
    const emitted_at = src.emitted_at;
    const copy: Record<string, unknown> = { kind: src.kind, reason: src.reason, shape: snapshotShape(src.shape) };
    if (vm_id !== undefined) copy.vm_id = vm_id;
    if (snapshot_id !== undefined) copy.snapshot_id = snapshot_id;
    if (source_snapshot_id !== undefined) copy.source_snapshot_id = source_snapshot_id;
    if (hypervisor !== undefined) copy.hypervisor = hypervisor;
    if (emitted_at !== undefined) copy.emitted_at = emitted_at instanceof Date ? new Date(Date.prototype.getTime.call(emitted_at)) : emitted_at;
    return copy as unknown as EntryInput;
  } catch (err) {
    if (err instanceof MeteringValidationError) throw err;
    throw new MeteringValidationError(`entry could not be read (${err instanceof Error ? err.message.slice(0, 120) : 'a non-Error was thrown'})`);
  }
}

function snapshotShape(shape: unknown): unknown {
  if (typeof shape !== 'object' || shape === null || Array.isArray(shape)) return shape;
  const src = shape as Record<string, unknown>;
  for (const key in src) {
    if (key !== 'cpu' && key !== 'mem_bytes' && key !== 'storage_bytes') throw new MeteringValidationError(`shape has unknown field ${JSON.stringify(key)}`);
  }
  return { cpu: src.cpu, mem_bytes: src.mem_bytes, storage_bytes: src.storage_bytes };
}

/**
 * Check what a caller passed to `emit`. Returns the normalized emitted_at (UTC, ms) or throws
 * MeteringValidationError naming the first problem.
 */
export function validateInput(input: EntryInput, now: () => Date | string): string {
  if (typeof input !== 'object' || input === null) throw new MeteringValidationError('entry must be an object');
  const problem = checkBody(input as unknown as Record<string, unknown>, INPUT_FIELDS);
  if (problem) throw new MeteringValidationError(problem);
  if (input.emitted_at === undefined) {
    const t = now();
    return typeof t === 'string' ? t : t.toISOString();
  }
  const ms = parseTimestamp(input.emitted_at);
  if (typeof ms === 'string') throw new MeteringValidationError(ms);
  return new Date(ms).toISOString();
}

/** Check a parsed ledger line against wire format v1. Returns null when valid, else the reason. */
export function checkWireEntry(value: unknown): string | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'line is not a JSON object';
  const e = value as Record<string, unknown>;
  if (e.v !== WIRE_VERSION) return `unsupported wire version ${JSON.stringify(e.v)} (this reader understands v${WIRE_VERSION})`;
  const problem =
    checkIdString('id', e.id, true) ??
    checkIdString('node', e.node, true) ??
    checkIdString('writer', e.writer, true) ??
    (typeof e.seq === 'number' && Number.isSafeInteger(e.seq) && e.seq >= 1 ? null : 'seq must be an integer >= 1') ??
    checkBody(e, WIRE_FIELDS);
  if (problem) return problem;
  if (typeof e.emitted_at !== 'string' || !WIRE_TIME.test(e.emitted_at)) return 'emitted_at must be UTC with milliseconds (YYYY-MM-DDTHH:MM:SS.mmmZ)';
  const ms = parseTimestamp(e.emitted_at);
  return typeof ms === 'string' ? ms : null;
}

/** Narrowing form of checkWireEntry. */
export function isLedgerEntry(value: unknown): value is LedgerEntry {
  return checkWireEntry(value) === null;
}

export type { Shape };
