// A module preload for kill -9 tests (node --import): the process stops for good just before it
// renames its Nth output partition into place (hourly/dt=*/, intervals/dt=*/, revisions/run=*/),
// after writing the temp file's path to METERING_TEST_PAUSE_MARKER. The test waits for that file,
// then kills the process: a run cut at a known point, with no timing involved.
import * as fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';

const marker = process.env.METERING_TEST_PAUSE_MARKER;
const at = Number(process.env.METERING_TEST_PAUSE_AT ?? '1');
const PARTITION = /[\\/](hourly|intervals|revisions)[\\/](dt|run)=[^\\/]+[\\/](hourly|intervals|revisions)\.(ndjson|parquet)$/;
let seen = 0;
const rename = fs.promises.rename;
fs.promises.rename = function pausingRename(from, to) {
  if (marker && PARTITION.test(String(to)) && ++seen === at) {
    fs.writeFileSync(marker, String(from));
    setInterval(() => {}, 1 << 30); // keep the process alive until it is killed
    return new Promise(() => {});
  }
  return rename.call(this, from, to);
};
syncBuiltinESMExports();
