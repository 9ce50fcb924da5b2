/**
 * Every fault scenario with its LIGHT parameters (inside `npm test`, test/faults.test.ts) and its
 * HEAVY parameters (`npm run test:faults`, test/faults/run-all.ts), and what each one proves.
 */
import * as badInput from './bad-input.js';
import * as brokenClock from './broken-clock.js';
import * as concurrency from './concurrency.js';
import * as crashStorm from './crash-storm.js';
import * as destinationFaults from './destination-faults.js';
import * as diskFull from './disk-full.js';
import * as security from './security.js';
import type { FaultResult } from './support.js';

export interface Scenario {
  name: string;
  /** Absent: heavy only (its light twin is covered by a combined scenario). */
  light?: () => Promise<FaultResult>;
  heavy: () => Promise<FaultResult>;
  /** One paragraph for docs/reliability.md. */
  proves: string;
}

export const SCENARIOS: Scenario[] = [
  {
    name: 'crash storm',
    light: () => crashStorm.run({ writers: 3, entriesPerWriter: 500, ratePerWriter: 300, writerKills: 3, shipperKills: 3 }),
    heavy: () => crashStorm.run({ writers: 4, entriesPerWriter: 5000, ratePerWriter: 400, writerKills: 30, shipperKills: 40 }),
    proves:
      'Writer processes (test/fixtures/ledger-writer.ts, each appending every id whose `emit` returned to its own acks file) and the shipper (`metering ship` to a bucket directory) are SIGKILLed at random moments, over and over; a killed writer is replaced by a new one (new writer id). After a final `ship --once`, the objects tile every segment byte for byte (no gap, no overlap), every acknowledged id is in them exactly once, the only unacknowledged entries are killed writers\' last lines, no writer has a seq gap, and `metering rollup` reads exactly the unique ids with zero duplicates and zero seq gaps.',
  },
  {
    name: 'crash storm, 8 KiB segments',
    light: () => crashStorm.run({ writers: 3, entriesPerWriter: 600, ratePerWriter: 300, writerKills: 4, shipperKills: 4, maxSegmentBytes: 8 * 1024, name: 'crash storm, 8 KiB segments' }),
    heavy: () => crashStorm.run({ writers: 4, entriesPerWriter: 4000, ratePerWriter: 400, writerKills: 30, shipperKills: 40, maxSegmentBytes: 8 * 1024, name: 'crash storm, 8 KiB segments' }),
    proves:
      'The crash storm with 8 KiB segments: a rotation every ~30 entries, so kills land during rotations, plain-file adoption checks, reconciliation of many freshly rotated segments and the tail-hash check of every position. Same claims: every acknowledged id exactly once in the objects and in the consumer, the objects tile every segment, no seq gap.',
  },
  {
    name: 'disk full: ledger',
    light: () => diskFull.run({ target: 'ledger', fills: 1, fullMs: 600, writers: 2, entriesPerWriter: 1500, ratePerWriter: 700, tmpfsMb: 4 }),
    heavy: () => diskFull.run({ target: 'ledger', fills: 6, fullMs: 1500, writers: 3, entriesPerWriter: 10_000, ratePerWriter: 600, tmpfsMb: 24 }),
    proves:
      'The ledger directory (and with it the shipper\'s state) lives on a small tmpfs (4 MiB light, 24 MiB heavy) that is filled to the last byte while writers emit and a shipper runs. Writers never see an exception (they exit 0), every failed write is counted (`droppedWrite`) and logged rate-limited with ENOSPC, the seq gaps the consumer reports equal the counted drops exactly, a write cut short leaves at most one fragment that ends up in quarantine (never costing the next entry), writers acknowledge entries again once space returns, the shipper survives and everything acknowledged is shipped and consumed exactly once.',
  },
  {
    name: 'disk full: bucket',
    light: () => diskFull.run({ target: 'bucket', fills: 1, fullMs: 600, writers: 2, entriesPerWriter: 1500, ratePerWriter: 700, tmpfsMb: 8 }),
    heavy: () => diskFull.run({ target: 'bucket', fills: 6, fullMs: 1500, writers: 3, entriesPerWriter: 10_000, ratePerWriter: 600, tmpfsMb: 24 }),
    proves:
      'The bucket directory lives on a small tmpfs that is filled while the shipper uploads. Checked every 150 ms while full: every visible object is whole and holds exactly the ledger bytes its name claims. First a deterministic probe: with 0, 1 or 2 pages free, a failed `put`/`putIfAbsent` leaves no temp file and no metadata without its object. After space returns no temp file is left anywhere (both found leaks, fixed), the shipper resumes without a restart and the end-to-end check passes.',
  },
  {
    name: 'disk full: consumer out',
    light: () => diskFull.run({ target: 'consumer-out', fills: 1, fullMs: 0, writers: 2, entriesPerWriter: 1000, ratePerWriter: 0, tmpfsMb: 8 }),
    heavy: () => diskFull.run({ target: 'consumer-out', fills: 12, fullMs: 0, writers: 4, entriesPerWriter: 5000, ratePerWriter: 0, tmpfsMb: 48 }),
    proves:
      '`metering rollup --out` on a tmpfs with 0-48 KiB free: every run fails with a non-zero exit and a message naming ENOSPC, no stack trace, no temp file and no half output file (this found truncated intervals.ndjson files renamed into place, fixed), and the next run after space returns writes outputs byte-identical to a run that never failed.',
  },
  {
    name: 'destination faults',
    light: () => destinationFaults.run({ faults: destinationFaults.ALL_FAULTS, faultMs: 500, rounds: 1, writers: 2, entriesPerWriter: 1000, ratePerWriter: 300, maxRssMb: 300 }),
    heavy: () => destinationFaults.run({ faults: destinationFaults.ALL_FAULTS, faultMs: 3000, rounds: 3, writers: 3, entriesPerWriter: 20_000, ratePerWriter: 1000, maxRssMb: 300 }),
    proves:
      'The shipper process ships to the GCS test server through the real @google-cloud/storage client while writers emit, and the server plays, in turn: an outage (connections refused), flapping (refused/accepted every 100-350 ms), slow answers (every request delayed 400 ms), connections reset mid-body (nothing stored) and after storing (answer lost), and a 429 storm. Afterwards every acknowledged id is in the bucket and in the consumer\'s input exactly once, the ranges tile every segment, no ledger object\'s generation ever changed (a retry never overwrote an object), and the shipper\'s peak RSS stayed under the bound.',
  },
  ...destinationFaults.ALL_FAULTS.map(
    (fault): Scenario => ({
      name: `destination: ${fault}`,
      heavy: () => destinationFaults.run({ faults: [fault], faultMs: fault === 'outage' ? 10_000 : 4000, rounds: 1, writers: 3, entriesPerWriter: 8000, ratePerWriter: 1000, maxRssMb: 300 }),
      proves: `${fault} alone and longer, with the same claims as the combined destination scenario.`,
    }),
  ),
  {
    name: 'bad input',
    light: () => badInput.run({ readerRuns: 150, consumerRuns: 8 }),
    heavy: () => badInput.run({ readerRuns: 5000, consumerRuns: 400 }),
    proves:
      'fast-check builds ledgers mixing valid entries with random bytes, invalid UTF-8, 70 KB lines, truncated JSON, 21 kinds of wrong field (types, unknown kind/reason/field, `v: 2`, timestamps in 1970, 2999, 9999 and +275760, no milliseconds), non-objects and a torn tail. The reader (whole buffer, random chunking, and from a file) reports every bad line at its exact offset and returns every valid line around it exactly once; random bytes never make it throw. The same lines, cut into objects named with sink/layout.ts (plain and gzip) next to a garbage object, a fake gzip object, a broken progress object and a stray file, go through `runRollup` and `metering rollup`: nothing throws, entries_read is exactly the valid lines, every bad line is reported with its object and offset, and each broken object is named.',
  },
  {
    name: 'broken clock',
    light: () => brokenClock.run({ vms: 4, heapMb: 160 }),
    heavy: () => brokenClock.run({ vms: 20, heapMb: 512 }),
    proves:
      'A node whose clock was reset to 2000-01-01 starts VMs that never stop; the wire format accepts the time and the shipper ships it. `metering rollup`, run with a bounded heap, must not crash, must not let its work grow with the age of the timestamp, and must still read and report every such entry (as `clock_skew_entries`), while a control run with the same entries stamped two hours ago bills them normally. When first written this scenario failed: each VM became an interval 26 years long, ~235 000 hourly rows, and 4 VMs aborted a 160 MiB-heap consumer; fixed in the consumer (8364ccc, --max-skew).',
  },
  {
    name: 'two consumers',
    light: () => concurrency.run({ case: 'two-consumers', rounds: 1, writers: 2, entriesPerWriter: 1000 }),
    heavy: () => concurrency.run({ case: 'two-consumers', rounds: 10, writers: 3, entriesPerWriter: 5000 }),
    proves:
      'While a rollup is held inside its read phase, `metering rollup` on the same state exits 3 with "another metering rollup is running" and writes nothing; once the first finishes a new run succeeds and counts no duplicate. Two processes started together on a fresh state never run at once: one refuses or they run one after the other, and the state counts every entry once.',
  },
  {
    name: 'two shippers',
    light: () => concurrency.run({ case: 'two-shippers', rounds: 1, writers: 1, entriesPerWriter: 1500 }),
    heavy: () => concurrency.run({ case: 'two-shippers', rounds: 6, writers: 2, entriesPerWriter: 8000 }),
    proves:
      'With a shipper running, a second `metering ship` on the same ledger directory exits 3 naming the running one\'s pid; of two started at the same moment, one refuses and the other ships. Writers emit throughout and the end-to-end check passes.',
  },
  {
    name: 'rotation under load',
    light: () => concurrency.run({ case: 'rotation-under-load', rounds: 1, writers: 3, entriesPerWriter: 1500 }),
    heavy: () => concurrency.run({ case: 'rotation-under-load', rounds: 1, writers: 8, entriesPerWriter: 20_000 }),
    proves:
      'Many writers at full speed with 16 KiB segments rotate hundreds of times while a live shipper tails and seals segments; every acknowledged entry ships exactly once, ranges tile every segment, and the consumer reads each entry once with no seq gap.',
  },
  {
    name: 'security basics',
    light: () => security.run({ entries: 200, allNames: false }),
    heavy: () => security.run({ entries: 5000, allNames: true }),
    proves:
      'After a pipeline run under umask 022, no ledger segment, shipper state file, bucket object or consumer state/output file (nor their directories) is readable by group or others (this found the consumer\'s --out directory created 0755, fixed). Node ids `../x`, `a/b`, `..`, `.x`, empty, over-long, with spaces or non-ASCII, and prefixes with `.`/`..` segments are refused by `metering ship`/`metering rollup` with a clear error and create nothing; NUL is refused by the library; resource ids like `../../etc/passwd` stay content. Against a GCS server answering 403 with a fake service-account key in GOOGLE_APPLICATION_CREDENTIALS, the shipper and consumer log the 403 but never the key, a bearer token, a vm id or a malformed line\'s bytes.',
  },
];
