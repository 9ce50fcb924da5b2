/**
 * Loading what a run has not read yet into the engine's tables: every valid line of every new
 * ledger object (parsed by the recorder's own parser, the single definition of a valid line) goes
 * in with the DuckDB appender, with its object name, byte offset, partition node and segment
 * creation time; invalid lines are recorded with their location. Objects are fetched a window
 * ahead and loaded in name order, so memory is bounded by the window, never by the history.
 */
import { createHash } from 'node:crypto';
import type { DuckDBAppender, DuckDBConnection } from '@duckdb/node-api';
import { segmentCreatedAt, serializeEntry, describeKind, type LedgerEntry, type Logger } from '../../../src/index.js';
import type { Destination } from '../../destinations/destination.js';
import type { BadObject } from '../report.js';
import type { RollupProgress } from '../rollup-options.js';
import { countQuarantineLines, fetchLedgerObject, parseLedgerObject, type ListedObject, type ObjectFetch } from '../source-reader.js';

export interface LoadResult {
  /** Objects attempted (ledger and quarantine). */
  objectsDone: number;
  /** Valid lines appended. */
  entries: number;
  bad: BadObject[];
}

/** Copies whose serialized content differs conflict; the digest stands for the content. */
const digestOf = (entry: LedgerEntry): string => createHash('md5').update(serializeEntry(entry)).digest('base64').slice(0, 22);

function appendEntry(a: DuckDBAppender, run: bigint, object: ListedObject, offset: number, e: LedgerEntry, segCreated: number | undefined): void {
  const info = describeKind(e.kind)!;
  a.appendBigInt(run);
  a.appendVarchar(object.name);
  a.appendBigInt(BigInt(offset));
  a.appendVarchar(object.parsed.node);
  if (segCreated === undefined) a.appendNull();
  else a.appendBigInt(BigInt(segCreated));
  a.appendVarchar(digestOf(e));
  a.appendVarchar(e.id);
  a.appendVarchar(e.node);
  a.appendVarchar(e.writer);
  a.appendBigInt(BigInt(e.seq));
  a.appendVarchar(e.kind);
  a.appendVarchar((info.idField === 'vm_id' ? e.vm_id : e.snapshot_id)!);
  a.appendVarchar(e.reason);
  if (e.hypervisor === undefined || e.hypervisor === null) a.appendNull();
  else a.appendVarchar(e.hypervisor);
  a.appendBigInt(BigInt(e.shape.cpu));
  a.appendBigInt(BigInt(e.shape.mem_bytes));
  a.appendBigInt(BigInt(e.shape.storage_bytes));
  a.appendBigInt(BigInt(Date.parse(e.emitted_at)));
  a.appendVarchar(e.emitted_at);
  a.endRow();
}

export interface LoadOptions {
  run: number;
  ledger: readonly ListedObject[];
  quarantine: readonly ListedObject[];
  concurrency: number;
  log: Logger;
  onProgress: (p: RollupProgress) => void;
}

export async function loadNewObjects(connection: DuckDBConnection, destination: Destination, o: LoadOptions): Promise<LoadResult> {
  const run = BigInt(o.run);
  const total = o.ledger.length + o.quarantine.length;
  const entriesAppender = await connection.createAppender('metering_entries_new');
  const objectsAppender = await connection.createAppender('metering_objects');
  const invalidAppender = await connection.createAppender('metering_invalid_lines');
  const result: LoadResult = { objectsDone: 0, entries: 0, bad: [] };
  const recordObject = (name: string, cls: 'ledger' | 'quarantine', entries: number, invalid: number, quarantined: number): void => {
    objectsAppender.appendVarchar(name);
    objectsAppender.appendVarchar(cls);
    objectsAppender.appendBigInt(run);
    objectsAppender.appendBigInt(BigInt(entries));
    objectsAppender.appendBigInt(BigInt(invalid));
    objectsAppender.appendBigInt(BigInt(quarantined));
    objectsAppender.endRow();
  };
  try {
    const window = Math.max(1, o.concurrency);
    // Fetched a window ahead, parsed one at a time: the heap holds one object's parsed lines, not
    // the window's (8 objects of 8 MiB parsed are ~120 MiB).
    const pending: Promise<ObjectFetch>[] = [];
    for (let i = 0; i < o.ledger.length; i++) {
      while (pending.length < window && i + pending.length < o.ledger.length) pending.push(fetchLedgerObject(destination, o.ledger[i + pending.length]!.name));
      const object = o.ledger[i]!;
      const read = parseLedgerObject(await pending.shift()!);
      if (!read.ok) {
        result.bad.push({ object: object.name, error: read.error });
        o.log.warn({ object: object.name, error: read.error }, 'metering rollup: object skipped');
      } else {
        const segCreated = segmentCreatedAt(object.parsed.segment);
        let entries = 0;
        let invalid = 0;
        for (const rec of read.records) {
          if (rec.type === 'entry') {
            entries++;
            appendEntry(entriesAppender, run, object, rec.offset, rec.entry, segCreated);
          } else {
            invalid++;
            invalidAppender.appendBigInt(run);
            invalidAppender.appendVarchar(object.name);
            invalidAppender.appendBigInt(BigInt(rec.offset));
            invalidAppender.appendBigInt(BigInt(rec.length));
            invalidAppender.appendVarchar(rec.reason);
            invalidAppender.endRow();
          }
        }
        if (invalid > 0) o.log.warn({ object: object.name, invalid }, 'metering rollup: invalid lines skipped');
        recordObject(object.name, 'ledger', entries, invalid, 0);
        result.entries += entries;
      }
      o.onProgress({ phase: 'read', objectsDone: ++result.objectsDone, objectsTotal: total, entries: result.entries });
    }
    for (const object of o.quarantine) {
      const lines = await countQuarantineLines(destination, object.name);
      if (typeof lines === 'number') recordObject(object.name, 'quarantine', 0, 0, lines);
      else result.bad.push({ object: object.name, error: lines.error });
      o.onProgress({ phase: 'read', objectsDone: ++result.objectsDone, objectsTotal: total, entries: result.entries });
    }
    entriesAppender.flushSync();
    objectsAppender.flushSync();
    invalidAppender.flushSync();
  } finally {
    entriesAppender.closeSync();
    objectsAppender.closeSync();
    invalidAppender.closeSync();
  }
  return result;
}
