import { openRecorder, type FileRecorderOptions } from './file-recorder.js';
import type { Recorder } from './recorder.js';

let shared: Recorder | undefined;

/**
 * The process-wide recorder: opened lazily on first use and shared by every caller, so a process
 * holds one ledger fd however many managers it runs. Options are read on the first call only.
 * Never throws: if the ledger cannot be opened, this is a NopRecorder (and a warning was logged).
 */
export function getRecorder(options?: FileRecorderOptions): Recorder {
  shared ??= openRecorder(options);
  return shared;
}

/** Replace the process-wide recorder (tests, or a host that builds its own). Returns the previous one. */
export function setRecorder(recorder: Recorder | undefined): Recorder | undefined {
  const previous = shared;
  shared = recorder;
  return previous;
}

/** Flush and close the process-wide recorder; the next getRecorder() opens a new one. */
export async function closeRecorder(): Promise<void> {
  const r = shared;
  shared = undefined;
  await r?.close();
}
