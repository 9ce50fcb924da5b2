import { createHash } from 'node:crypto';
import type { InvalidRecord, LedgerEntry } from '../../src/index.js';
import type { ObjectClass } from '../layout.js';
import { quarantineBody } from './quarantine.js';

const MIN_BODY_BYTES = 64 * 1024;

/**
 * The complete lines of one byte range [start, end) of a segment. Valid lines become the ledger
 * object of that range, invalid ones its quarantine object; blank lines belong to the range but to
 * neither object. Valid lines are copied into one body buffer as they arrive: keeping views of the
 * read buffers instead pinned every 1 MiB read until a major GC, and the final concat made a second
 * copy, which together pushed a draining shipper past 150 MiB (docs/benchmarks.md). The buffer is
 * lent by the SegmentBatcher and reused for its next batch, so it is only valid until then.
 */
export class Batch {
  private bodyBuf: Buffer;
  ledgerBytes = 0;
  ledgerLineCount = 0;
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
    /** Scratch space for the ledger body (grown if a batch needs more). */
    body: Buffer = Buffer.alloc(0),
  ) {
    this.end = start;
    this.bodyBuf = body;
  }

  /** The body buffer as it ended up (possibly grown), for the batcher to reuse. */
  get scratch(): Buffer {
    return this.bodyBuf;
  }

  addEntry(line: Buffer, entry: LedgerEntry): void {
    const need = this.ledgerBytes + line.length + 1;
    if (need > this.bodyBuf.length) {
      // Grow by doubling: amortised one extra copy, and a small batch stays small.
      const grown = Buffer.allocUnsafeSlow(Math.max(need, this.bodyBuf.length * 2, MIN_BODY_BYTES));
      this.bodyBuf.copy(grown, 0, 0, this.ledgerBytes);
      this.bodyBuf = grown;
    }
    line.copy(this.bodyBuf, this.ledgerBytes);
    this.bodyBuf[need - 1] = 0x0a;
    this.ledgerBytes = need;
    this.ledgerLineCount++;
    const w = this.writers.get(entry.writer);
    if (!w || entry.seq > w.seq) this.writers.set(entry.writer, { seq: entry.seq, emitted_at: entry.emitted_at });
    this.lastEmittedAt = entry.emitted_at;
  }

  addInvalid(r: InvalidRecord): void {
    // A copy, for the same reason as the valid lines: a view would pin its whole read buffer.
    this.invalid.push({ ...r, line: Buffer.from(r.line) });
  }

  /** Which objects this range produces (stored in each object's metadata, see reconcile). */
  get classes(): ObjectClass[] {
    const out: ObjectClass[] = [];
    if (this.ledgerLineCount > 0) out.push('ledger');
    if (this.invalid.length > 0) out.push('quarantine');
    return out;
  }

  /** The uncompressed body of one object of this range. */
  body(cls: ObjectClass): Buffer {
    if (cls === 'ledger') return this.bodyBuf.subarray(0, this.ledgerBytes);
    return quarantineBody(this.segment, this.invalid);
  }

  count(cls: ObjectClass): number {
    return cls === 'ledger' ? this.ledgerLineCount : this.invalid.length;
  }
}

export function sha256Hex(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}
