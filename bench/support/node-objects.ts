/**
 * One node's shipped ledger, for consumer benchmarks: the real recorder writes the workload into a
 * ledger directory, whose segments are then cut into objects exactly as the shipper cuts them
 * (complete lines, at most --batch-bytes per object, named by segment and byte range; the segment
 * named by its first entry's simulated time, see simulatedSegmentName) and stored as
 * files in a bucket directory. Runs as its own process so several nodes are made in parallel.
 * Prints one JSON line per object: { name, entries, lastMs }.
 *
 *   node --import tsx bench/support/node-objects.ts --bucket DIR --node N --entries 1000000 [--vms 1000] [--step-ms 1200] [--keep-snapshots 200]
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { objectName } from 'metering-ledger/sink';
import { newSegmentName } from '../../src/ledger-layout.js';
import { ledgerSegments } from './backlog.js';
import { writeWorkload } from './workload.js';

export interface ShippedObject {
  name: string;
  entries: number;
  /** emitted_at (ms) of the object's last entry. */
  lastMs: number;
}

/**
 * The name the segment would have had on a node whose clock is the workload's: the recorder names a
 * segment by the wall clock when it creates it, and the workload writes days of simulated time in
 * seconds, so the file's own name says "today". Left so, the consumer's clock-skew rule (an entry
 * more than --max-skew, 30 days, from its segment's creation is reported, not billed) would
 * silently drop more of the fleet every day the calendar moves past its simulated dates, and the
 * objects' dt= partitions would all be today's. So the objects are named after the segment's
 * first entry, which is when a real node would have created it.
 */
function simulatedSegmentName(data: Buffer): string {
  const firstLine = data.subarray(0, data.indexOf(0x0a)).toString('utf8');
  return newSegmentName(new Date((JSON.parse(firstLine) as { emitted_at: string }).emitted_at));
}

/** Cuts a segment into shipper-style objects under `bucket`; returns them in ledger order. */
export function cutSegment(bucket: string, node: string, segmentPath: string, batchBytes: number): ShippedObject[] {
  const data = fs.readFileSync(segmentPath);
  const segment = data.length > 0 ? simulatedSegmentName(data) : path.basename(segmentPath);
  const out: ShippedObject[] = [];
  let start = 0;
  while (start < data.length) {
    // Like the shipper: add whole lines until the object covers batchBytes (at least one line).
    let end = data.indexOf(0x0a, start) + 1;
    if (end === 0) break; // a torn tail: not shipped
    for (;;) {
      const next = data.indexOf(0x0a, end) + 1;
      if (next === 0 || next - start > batchBytes) break;
      end = next;
    }
    const body = data.subarray(start, end);
    let entries = 0;
    for (let i = body.indexOf(0x0a); i !== -1; i = body.indexOf(0x0a, i + 1)) entries++;
    const lastLine = body.subarray(body.lastIndexOf(0x0a, body.length - 2) + 1, body.length - 1).toString('utf8');
    const name = objectName('', 'ledger', node, segment, start, end, false);
    const file = path.join(bucket, ...name.split('/'));
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, body);
    out.push({ name, entries, lastMs: Date.parse((JSON.parse(lastLine) as { emitted_at: string }).emitted_at) });
    start = end;
  }
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({
    options: {
      bucket: { type: 'string' },
      node: { type: 'string' },
      entries: { type: 'string' },
      vms: { type: 'string', default: '1000' },
      'step-ms': { type: 'string', default: '1200' },
      'start-ms': { type: 'string', default: String(Date.UTC(2026, 10, 1)) },
      'keep-snapshots': { type: 'string', default: '200' },
      'batch-bytes': { type: 'string', default: String(8 * 1024 * 1024) },
    },
  });
  if (!values.bucket || !values.node || !values.entries) throw new Error('--bucket, --node and --entries are required');
  const ledger = fs.mkdtempSync(path.join(os.tmpdir(), `bench-node-${values.node}-`));
  try {
    await writeWorkload({
      dir: ledger,
      node: values.node,
      entries: Number(values.entries),
      vms: Number(values.vms),
      stepMs: Number(values['step-ms']),
      startMs: Number(values['start-ms']),
      keepSnapshots: Number(values['keep-snapshots']),
    });
    for (const seg of ledgerSegments(ledger).files) {
      for (const o of cutSegment(values.bucket, values.node, seg, Number(values['batch-bytes']))) process.stdout.write(JSON.stringify(o) + '\n');
      fs.rmSync(seg); // keep the disk footprint at one copy
    }
  } finally {
    fs.rmSync(ledger, { recursive: true, force: true });
  }
}
