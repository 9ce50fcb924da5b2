/**
 * The ledger-directory cases (issue 12) for docs/reliability.md: each one a test through real files
 * and processes that failed before its fix. Figures measured on the 2-core shared machine with the
 * tests named, against the code before the fix (`git checkout 8ca8bfb -- sink src`) and after.
 */
export const LEDGER_DIR_CASES: string[] = [
  '## The ledger directory from both sides',
  '',
  'Each row is a test through real files and `metering`/writer processes that fails on the code before the fix',
  '(checked by running it against commit 8ca8bfb\'s `sink/` and `src/`) and passes after it.',
  '',
  '| case | test | before | after |',
  '|---|---|---|---|',
  '| plain `ledger.jsonl` (cocoon\'s Go recorder) | test/shipper-ledger-dir.test.ts | 0 of 300 entries shipped, `--once` "drained", `status` backlog 0 B with 88 594 B unshipped | 300 of 300 shipped under a reserved segment name; after our recorder adopts the file, 450 of 450 exactly once, same object names, no new generation; `status` counts the file |',
  '| segment cut to half its size and regrown | test/shipper-ledger-dir.test.ts | 501 of 1000 new entries never shipped (their fragments in quarantine), `--once` exit 0, backlog 0 | 0 of 1000 missing; shipped again from the first changed range (generation 1 starts after 0, at or before the cut), logged, counted, shown as last error |',
  '| FIFO named like a segment | test/shipper-ledger-dir.test.ts, test/recorder-ledger-dir.test.ts | `--once` still hanging at the 60 s test bound; recorder: 200 of 200 acknowledged entries written into the FIFO (lost) | never opened (lstat, `O_NOFOLLOW\\|O_NONBLOCK`, fstat): `--once` ends in 0.9 s, 400 of 400 entries shipped, exit 1 naming it; daemon reports it and stops on SIGTERM (exit 0); recorder repoints the link |',
  '| symlinks out of the directory | test/shipper-ledger-dir.test.ts, test/recorder-ledger-dir.test.ts | recorder: 300 of 300 acknowledged entries appended to a file outside the directory (45 of 300 to a segment-named one); shipper: a segment-named link to a passwd file uploaded to quarantine | recorder: 0 appended outside, link repointed to a fresh segment under the lock with a warning naming the target; shipper: links never followed (not even to a sibling segment), reported |',
  '| two shippers after a SIGKILL | test/shipper-lock.test.ts | both took the lock in 24 of 50 races | exactly one in 50 of 50 (abstract Unix socket, kernel-released); the loser exits 3 naming the winner\'s pid |',
  '| `emit` with hostile input | test/recorder-hostile-input.test.ts | threw on the first of 12 hostile inputs (throwing getter); a changing getter could forge a line | 0 throws for 12 hostile inputs (throwing getters, Proxies, a Proxy Date, primitives); 4 changing getters recorded as read once: 0 forged lines |',
  '| `ship --once` on errors it cannot fix | test/shipper-give-up.test.ts | `--dest` a file, a 403: still retrying at the 60 s test bound (forever) | exit 1 at once (0.4 s for a file `--dest`), a refused endpoint after `--max-retry-time 2s`; the message names each file with its unshipped bytes |',
  '| `parseLedgerLine` on a 520 KB line of `{"v":` markers | test/reader.test.ts | out of memory in the test (38 s and 322 MiB per the report) | 23 ms, at most one JSON.parse per line and one for its last marker |',
  '| temp files left by kill -9 | test/shipper-startup.test.ts, test/consumer-temp-cleanup.test.ts | `.positions.json.<pid>.*.tmp`, `.status.json.*`, bucket `.tmp/<pid>-*`, the consumer\'s: left for good | removed on the next start (dead pids only; bucket temps also over an hour old) |',
  '| directory not writable at rotation | test/recorder-ledger-dir.test.ts | 973 of 1000 entries dropped (writer running as another user, directory made 0500) | 0 dropped: the open segment keeps taking entries, rotation retried every second, one warning |',
  '| daemon started before the ledger directory exists | test/shipper-startup.test.ts | exit 1 at once | one warning, waits, ships 30 of 30 entries once the directory appears; `--once` still fails fast |',
  '| kill -9 storm with 8 KiB segments | test/faults.test.ts (light), `npm run test:faults -- --only "8 KiB"` (heavy) | (new scenario) | heavy: 30 writer + 40 shipper kills, 25 145 entries, 737 objects, 0 lost, 0 duplicated, all claims hold (50 s) |',
  '',
];
