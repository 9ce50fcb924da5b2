import type { InvalidRecord } from '../../src/index.js';

/** One line of a quarantine object: a malformed ledger line, where it was, and why. */
export interface QuarantineRecord {
  /** The segment file the line came from. */
  source: string;
  /** Byte offset of the line in the segment. */
  offset: number;
  /** Its length in bytes, newline included (for an over-long line: its full length). */
  length: number;
  reason: string;
  /** The bytes (an over-long line keeps only its head), base64: they may not be UTF-8. */
  line_base64: string;
}

export function quarantineRecord(segment: string, r: InvalidRecord): QuarantineRecord {
  return { source: segment, offset: r.offset, length: r.length, reason: r.reason, line_base64: r.line.toString('base64') };
}

/** The ndjson body of a quarantine object. */
export function quarantineBody(segment: string, records: InvalidRecord[]): Buffer {
  return Buffer.from(records.map((r) => JSON.stringify(quarantineRecord(segment, r)) + '\n').join(''), 'utf8');
}
