import { createHash } from 'node:crypto';
import type { InvalidRecord, LedgerEntry } from '../../src/index.js';
import type { ObjectClass } from '../layout.js';
import { quarantineBody } from './quarantine.js';

/**
 * The complete lines of one byte range [start, end) of a segment. Valid lines become the ledger
 * object of that range, invalid ones its quarantine object; blank lines belong to the range but to
 * neither object. Holds slices of the bytes read, so its memory is about end - start.
 */
export class Batch {
  readonly ledgerLines: Buffer[] = [];
  ledgerBytes = 0;
  readonly invalid: InvalidRecord[] = [];
  /** Highest seq (and its emitted_at) per writer among the valid lines. */
  readonly writers = new Map<string, { seq: number; emitted_at: string }>();
  /** emitted_at of the last valid line, in ledger order. */
  lastEmittedAt: string | undefined;
  end: number;

  constructor(
    readonly segment: string,
    readonly gen: number,
    readonly start: number,
  ) {
    this.end = start;
  }

  addEntry(line: Buffer, entry: LedgerEntry): void {
    this.ledgerLines.push(line);
    this.ledgerBytes += line.length + 1;
    const w = this.writers.get(entry.writer);
    if (!w || entry.seq > w.seq) this.writers.set(entry.writer, { seq: entry.seq, emitted_at: entry.emitted_at });
    this.lastEmittedAt = entry.emitted_at;
  }

  addInvalid(r: InvalidRecord): void {
    this.invalid.push(r);
  }

  /** Which objects this range produces (stored in each object's metadata, see reconcile). */
  get classes(): ObjectClass[] {
    const out: ObjectClass[] = [];
    if (this.ledgerLines.length > 0) out.push('ledger');
    if (this.invalid.length > 0) out.push('quarantine');
    return out;
  }

  /** The uncompressed body of one object of this range. */
  body(cls: ObjectClass): Buffer {
    if (cls === 'ledger') {
      const parts: Buffer[] = [];
      const nl = Buffer.from('\n');
      for (const l of this.ledgerLines) parts.push(l, nl);
      return Buffer.concat(parts, this.ledgerBytes);
    }
    return quarantineBody(this.segment, this.invalid);
  }

  count(cls: ObjectClass): number {
    return cls === 'ledger' ? this.ledgerLines.length : this.invalid.length;
  }
}

export function sha256Hex(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}
