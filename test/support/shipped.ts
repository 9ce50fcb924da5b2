import * as fs from 'node:fs';
import * as path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { parseLedgerBuffer, type LedgerEntry } from 'metering-ledger';
import { parseObjectName, type Destination, type ParsedObjectName, type QuarantineRecord } from 'metering-ledger/sink';

export interface ShippedObject extends ParsedObjectName {
  name: string;
  body: Buffer;
  metadata: Record<string, string>;
}

/** Every ledger/quarantine object at a destination, bodies decompressed. */
export async function shippedObjects(dest: Destination, prefix = ''): Promise<ShippedObject[]> {
  const out: ShippedObject[] = [];
  for await (const info of dest.list(prefix)) {
    const parsed = parseObjectName(prefix, info.name);
    if (!parsed) continue;
    const raw = await dest.get(info.name);
    if (!raw) throw new Error(`listed object ${info.name} cannot be read`);
    out.push({ ...parsed, name: info.name, body: parsed.gzip ? gunzipSync(raw) : raw, metadata: info.metadata });
  }
  return out;
}

export type { QuarantineRecord };

/** Entries of the ledger objects, in object order. */
export function shippedEntries(objects: ShippedObject[]): LedgerEntry[] {
  const out: LedgerEntry[] = [];
  for (const o of objects.filter((x) => x.cls === 'ledger').sort(byRange)) {
    for (const r of parseLedgerBuffer(o.body)) {
      if (r.type !== 'entry') throw new Error(`ledger object ${o.name} holds an invalid line at ${r.offset}: ${r.reason}`);
      out.push(r.entry);
    }
  }
  return out;
}

export function quarantineRecords(objects: ShippedObject[]): (QuarantineRecord & { object: string })[] {
  return objects
    .filter((x) => x.cls === 'quarantine')
    .sort(byRange)
    .flatMap((o) =>
      o.body
        .toString('utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => ({ ...(JSON.parse(l) as QuarantineRecord), object: o.name })),
    );
}

function byRange(a: ShippedObject, b: ShippedObject): number {
  return a.segment < b.segment ? -1 : a.segment > b.segment ? 1 : a.gen - b.gen || a.start - b.start;
}

/**
 * The exactly-once check, against the ledger bytes: for every segment of `ledgerDir`, the ranges of
 * the current objects (the newest generation, older ones before where it starts) tile
 * [0, shipped end) with no gap and no overlap, every ledger
 * object holds exactly the valid lines of its range, every quarantine object exactly its invalid
 * lines. Returns problems (empty when all is well).
 */
export function checkExactlyOnce(ledgerDir: string, objects: ShippedObject[], options: { requireComplete?: boolean; segments?: Map<string, Buffer> } = {}): string[] {
  const problems: string[] = [];
  const segments = options.segments ?? new Map(fs.readdirSync(ledgerDir).filter((n) => /^ledger-.*\.jsonl$/.test(n)).map((n) => [n, fs.readFileSync(path.join(ledgerDir, n))]));
  for (const [segment, bytes] of segments) {
    const mine = objects.filter((o) => o.segment === segment);
    // What speaks for the bytes now: the newest generation from where it starts, older ones before
    // that (a segment cut short and regrown is shipped again from its first changed range only).
    const current: ShippedObject[] = [];
    let cutoff = Infinity;
    for (const gen of [...new Set(mine.map((o) => o.gen))].sort((a, b) => b - a)) {
      const inGen = mine.filter((x) => x.gen === gen && x.end <= cutoff);
      if (inGen.length === 0) continue;
      current.push(...inGen);
      cutoff = Math.min(cutoff, ...inGen.map((x) => x.start));
    }
    const ranges = new Map<string, { start: number; end: number; ledger?: ShippedObject; quarantine?: ShippedObject }>();
    for (const o of current) {
      const key = `${o.start}-${o.end}`;
      const r = ranges.get(key) ?? { start: o.start, end: o.end };
      r[o.cls] = o;
      ranges.set(key, r);
    }
    const sorted = [...ranges.values()].sort((a, b) => a.start - b.start);
    let at = 0;
    for (const r of sorted) {
      if (r.start !== at) problems.push(`${segment}: ${r.start > at ? `gap ${at}-${r.start}` : `overlap at ${r.start} (covered through ${at})`}`);
      at = Math.max(at, r.end);
      const slice = bytes.subarray(r.start, r.end);
      const records = parseLedgerBuffer(slice, { includeTail: true });
      const valid = records.filter((x) => x.type === 'entry');
      const invalid = records.filter((x) => x.type === 'invalid');
      const expectLedger = Buffer.concat(valid.flatMap((x) => [x.line, Buffer.from('\n')]));
      if (valid.length > 0 && !r.ledger) problems.push(`${segment} ${r.start}-${r.end}: ledger object missing`);
      if (r.ledger && !r.ledger.body.equals(expectLedger)) problems.push(`${segment} ${r.start}-${r.end}: ledger object differs from the ledger bytes`);
      if (invalid.length > 0 && !r.quarantine) problems.push(`${segment} ${r.start}-${r.end}: quarantine object missing`);
      if (r.quarantine) {
        const got = r.quarantine.body.toString('utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as QuarantineRecord);
        if (got.length !== invalid.length) problems.push(`${segment} ${r.start}-${r.end}: quarantine has ${got.length} records, expected ${invalid.length}`);
        got.forEach((q, i) => {
          const exp = invalid[i];
          if (exp && (q.offset !== r.start + exp.offset || q.source !== segment)) problems.push(`${segment}: quarantine record ${i} offset ${q.offset}, expected ${r.start + exp.offset}`);
        });
      }
    }
    const end = options.requireComplete ? bytes.length : at;
    if (options.requireComplete && at !== end) problems.push(`${segment}: shipped through ${at} of ${bytes.length} bytes`);
  }
  return problems;
}
