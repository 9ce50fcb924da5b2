// A module preload for kill -9 tests (node --import): the process stops for good right after it
// writes its Nth stderr log line containing METERING_TEST_PAUSE_LOG (the CLI logs synchronously,
// through fs.writeSync), after writing METERING_TEST_PAUSE_MARKER. The test waits for that file,
// then kills the process: a run cut at a known point (e.g. just after a backlog chunk committed),
// with no timing involved.
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';

const marker = process.env.METERING_TEST_PAUSE_MARKER;
const text = process.env.METERING_TEST_PAUSE_LOG;
const at = Number(process.env.METERING_TEST_PAUSE_AT ?? '1');
let seen = 0;
const writeSync = fs.writeSync;
fs.writeSync = function pausingWriteSync(fd, data, ...rest) {
  const written = writeSync.call(this, fd, data, ...rest);
  if (marker && text && fd === 2 && String(data).includes(text) && ++seen === at) {
    fs.writeFileSync(marker, 'paused');
    // Blocks the only thread, timers and all, until the process is killed.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
  }
  return written;
};
syncBuiltinESMExports();
