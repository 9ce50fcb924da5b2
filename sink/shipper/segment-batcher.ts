import type { FileHandle } from 'node:fs/promises';
import { LedgerLineSplitter, type LedgerRecord } from '../../src/index.js';
import { Batch } from './batch.js';

const READ_CHUNK = 1024 * 1024;

interface QueuedRecord {
  record: LedgerRecord;
  /** The record ends a physical line (a torn head split off a line does not). */
  endsLine: boolean;
}

export interface NextBatchOptions {
  /** Never read at or past this offset (an existing object starts there). */
  limit: number;
  /** Cut the batch once it covers `batchBytes` (false when re-cutting a known range exactly). */
  sizeCut: boolean;
  /** At EOF, report bytes after the last newline as a torn line (sealed segments only). */
  includeTail: boolean;
  /**
   * Treat this offset as the end of the file: the size seen when the pass started. Without it a
   * pass would chase a busy file's tail upload after upload, making many tiny objects.
   */
  eof?: number;
}

/**
 * Cuts a segment, from a line boundary on, into batches of complete lines. Streams in 1 MiB reads,
 * so memory is one batch plus one read whatever the backlog: both buffers are allocated once and
 * reused. A batch is therefore only valid until the next call to `next()` (the shipper uploads and
 * commits each batch before asking for the next). Batches only end at physical line ends, so
 * [start, end) ranges tile the segment.
 */
export class SegmentBatcher {
  /** Reused for every read: records that outlive a read are copied (by the splitter or the batch). */
  private readonly readBuf = Buffer.allocUnsafeSlow(READ_CHUNK);
  /** Lent to each batch in turn; a batch whose lines exceed it grows it once. */
  private body: Buffer;
  private readonly splitter: LedgerLineSplitter;
  private queue: QueuedRecord[] = [];
  private queueAt = 0;
  /** Offset of the next read. */
  readPos: number;
  /** Start of the next batch. */
  cursor: number;
  /** The last read returned 0 bytes. */
  atEof = false;

  constructor(
    private readonly fh: FileHandle,
    readonly segment: string,
    readonly gen: number,
    start: number,
    private readonly batchBytes: number,
    maxLineBytes: number,
  ) {
    this.splitter = new LedgerLineSplitter(start, maxLineBytes);
    this.body = Buffer.allocUnsafeSlow(batchBytes + maxLineBytes + 1);
    this.readPos = start;
    this.cursor = start;
  }

  /** The next batch, or undefined when no complete line lies before the limit/EOF. */
  async next(opts: NextBatchOptions): Promise<Batch | undefined> {
    const batch = new Batch(this.segment, this.gen, this.cursor, this.body);
    let atLineStart = true;
    let used = false;
    for (;;) {
      while (this.queueAt < this.queue.length) {
        const q = this.queue[this.queueAt]!;
        const r = q.record;
        if (opts.sizeCut && used && atLineStart && r.offset - batch.start >= this.batchBytes) {
          batch.end = r.offset;
          this.cursor = batch.end;
          this.body = batch.scratch;
          return batch;
        }
        this.queueAt++;
        used = true;
        if (r.type === 'entry') batch.addEntry(r.line, r.entry);
        else batch.addInvalid(r);
        atLineStart = q.endsLine;
      }
      this.queue = [];
      this.queueAt = 0;
      if (this.readPos >= opts.limit) break;
      if (opts.eof !== undefined && this.readPos >= opts.eof) {
        this.atEof = true;
        break;
      }
      const want = Math.min(READ_CHUNK, Math.min(opts.limit, opts.eof ?? Infinity) - this.readPos);
      // The queue is empty here, so nothing refers to the previous read any more.
      const buf = this.readBuf;
      const { bytesRead } = await this.fh.read(buf, 0, want, this.readPos);
      if (bytesRead === 0) {
        this.atEof = true;
        break;
      }
      this.atEof = false;
      const chunk = buf.subarray(0, bytesRead);
      const chunkStart = this.readPos;
      this.readPos += bytesRead;
      for (const record of this.splitter.push(chunk)) {
        const lastByte = record.offset + record.length - 1 - chunkStart;
        this.queue.push({ record, endsLine: lastByte >= 0 && chunk[lastByte] === 0x0a });
      }
    }
    // A torn tail at the end of a re-cut range is part of that range, as when it was first cut.
    if (opts.includeTail && (this.atEof || this.readPos >= opts.limit)) {
      const tail = this.splitter.finish();
      if (tail) batch.addInvalid(tail);
    }
    batch.end = this.splitter.offset;
    this.cursor = batch.end;
    this.body = batch.scratch;
    return batch.end > batch.start ? batch : undefined;
  }
}
