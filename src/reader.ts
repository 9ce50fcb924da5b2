import { isUtf8 } from 'node:buffer';
import * as fs from 'node:fs';
import { LINE_START_MARKER, type LedgerEntry } from './entry.js';
import { checkWireEntry } from './validate.js';

/** A valid entry, where it was, and its exact bytes (without the newline). */
export interface EntryRecord {
  type: 'entry';
  /** Byte offset of the line's first byte. */
  offset: number;
  /** Bytes of the line including its newline (a torn prefix split off is not counted). */
  length: number;
  entry: LedgerEntry;
  line: Buffer;
}

/** A line that is not a valid entry: torn, garbage, not JSON, wrong types, unknown kind, too long... */
export interface InvalidRecord {
  type: 'invalid';
  offset: number;
  length: number;
  reason: string;
  /** The bytes (at most `maxLineBytes`; a longer line keeps only its head). */
  line: Buffer;
}

export type LedgerRecord = EntryRecord | InvalidRecord;

export const DEFAULT_MAX_LINE_BYTES = 64 * 1024;
const MARKER = Buffer.from(LINE_START_MARKER);
const KEEP_OF_OVERLONG = 1024;

function parseOne(buf: Buffer, offset: number, length: number): LedgerRecord {
  if (!isUtf8(buf)) return { type: 'invalid', offset, length, reason: 'line is not valid UTF-8', line: buf };
  let value: unknown;
  try {
    value = JSON.parse(buf.toString('utf8'));
  } catch {
    return { type: 'invalid', offset, length, reason: 'line is not valid JSON', line: buf };
  }
  const problem = checkWireEntry(value);
  if (problem) return { type: 'invalid', offset, length, reason: problem, line: buf };
  return { type: 'entry', offset, length, entry: value as LedgerEntry, line: buf };
}

/**
 * Parses one line (without its newline; `length` counts it). A line that is not JSON but contains a
 * later entry start (`{"v":`) is a torn write followed by a good entry: the two are reported
 * separately so the torn fragment never costs the entry after it. Only the LAST marker can start
 * that entry: inside a valid entry `{"v":` occurs once, at its start (a quote in a string is
 * escaped), so trying every marker would only make a line full of markers quadratic.
 */
export function parseLedgerLine(buf: Buffer, offset = 0, length = buf.length + 1): LedgerRecord[] {
  const whole = parseOne(buf, offset, length);
  if (whole.type === 'entry' || whole.reason !== 'line is not valid JSON') return [whole];
  const at = buf.lastIndexOf(MARKER);
  if (at > 0) {
    const tail = parseOne(buf.subarray(at), offset + at, length - at);
    if (tail.type === 'entry') {
      const head = buf.subarray(0, at);
      return [{ type: 'invalid', offset, length: at, reason: 'torn line (an interrupted write)', line: head }, tail];
    }
  }
  return [whole];
}

/**
 * Splits a byte stream into ledger records. Only newline-terminated lines are complete; `offset`
 * is always the end of the last complete line, i.e. where to resume. Memory stays bounded: a line
 * longer than `maxLineBytes` is skipped as it streams past and reported with its head only.
 */
export class LedgerLineSplitter {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private overlong = false;
  private lineStart: number;

  constructor(
    startOffset = 0,
    private readonly maxLineBytes = DEFAULT_MAX_LINE_BYTES,
  ) {
    this.lineStart = startOffset;
  }

  /** End of the last complete line seen. */
  get offset(): number {
    return this.lineStart;
  }

  /** Bytes held for a line that has not ended yet. */
  get pendingLength(): number {
    return this.pendingBytes;
  }

  push(chunk: Buffer, out: LedgerRecord[] = []): LedgerRecord[] {
    let from = 0;
    for (;;) {
      const nl = chunk.indexOf(0x0a, from);
      if (nl === -1) {
        this.hold(chunk.subarray(from));
        return out;
      }
      const piece = chunk.subarray(from, nl);
      from = nl + 1;
      const length = this.pendingBytes + piece.length + 1;
      const offset = this.lineStart;
      this.lineStart += length;
      if (this.overlong) {
        const head = Buffer.concat(this.pending);
        out.push({ type: 'invalid', offset, length, reason: `line longer than ${this.maxLineBytes} bytes`, line: head });
      } else if (length > this.maxLineBytes + 1) {
        const head = Buffer.concat([...this.pending, piece]).subarray(0, KEEP_OF_OVERLONG);
        out.push({ type: 'invalid', offset, length, reason: `line longer than ${this.maxLineBytes} bytes`, line: head });
      } else if (length > 1) {
        const line = this.pending.length ? Buffer.concat([...this.pending, piece]) : piece;
        for (const r of parseLedgerLine(line, offset, length)) out.push(r);
      }
      // length === 1: a blank line carries nothing; it is consumed silently.
      this.pending = [];
      this.pendingBytes = 0;
      this.overlong = false;
    }
  }

  private hold(rest: Buffer): void {
    if (rest.length === 0) return;
    if (this.overlong) {
      this.pendingBytes += rest.length;
      return;
    }
    this.pending.push(Buffer.from(rest)); // copy: the caller may reuse its chunk
    this.pendingBytes += rest.length;
    if (this.pendingBytes > this.maxLineBytes) {
      // Keep only a head for the report; drop the rest as it arrives.
      this.pending = [Buffer.concat(this.pending).subarray(0, KEEP_OF_OVERLONG)];
      this.overlong = true;
    }
  }

  /**
   * For a source known to be complete (an uploaded object): what is left after the last newline is
   * a torn tail; report it. For a file still being written, do not call this: the tail may still grow.
   */
  finish(): InvalidRecord | undefined {
    if (this.pendingBytes === 0) return undefined;
    const offset = this.lineStart;
    const length = this.pendingBytes;
    const line = Buffer.concat(this.pending);
    this.lineStart += length;
    this.pending = [];
    this.pendingBytes = 0;
    this.overlong = false;
    return { type: 'invalid', offset, length, reason: 'torn line (no trailing newline)', line };
  }
}

export interface ReadLedgerOptions {
  /** Byte offset to start at (the start of a line). Default 0. */
  start?: number;
  /** Stop before this byte offset. Default: the end of the file. */
  end?: number;
  maxLineBytes?: number;
  /** Report bytes after the last newline as a torn line. Default false (a live file may still grow). */
  includeTail?: boolean;
}

/**
 * Streams a ledger file (or an uploaded object on disk) in file order, with byte offsets. Never
 * throws for bad content: torn and invalid lines come back as `invalid` records with their offset.
 */
export async function* readLedger(file: string, options: ReadLedgerOptions = {}): AsyncGenerator<LedgerRecord> {
  const start = options.start ?? 0;
  const splitter = new LedgerLineSplitter(start, options.maxLineBytes);
  const stream = fs.createReadStream(file, {
    start,
    ...(options.end !== undefined ? { end: options.end - 1 } : {}),
    highWaterMark: 1024 * 1024,
  });
  const batch: LedgerRecord[] = [];
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    splitter.push(chunk, batch);
    yield* batch;
    batch.length = 0;
  }
  if (options.includeTail) {
    const tail = splitter.finish();
    if (tail) yield tail;
  }
}

/** Reads a whole ledger source held in memory (tests, small objects). */
export function parseLedgerBuffer(data: Buffer, options: { maxLineBytes?: number; includeTail?: boolean } = {}): LedgerRecord[] {
  const splitter = new LedgerLineSplitter(0, options.maxLineBytes);
  const out = splitter.push(data);
  if (options.includeTail ?? true) {
    const tail = splitter.finish();
    if (tail) out.push(tail);
  }
  return out;
}
