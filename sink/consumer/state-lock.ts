/**
 * One rollup writer at a time (multica's advisory lock 4246, as a lock file): a second run on the
 * same state file refuses instead of racing the first and publishing different final rows.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import lockfile from 'proper-lockfile';

export class RollupLockedError extends Error {
  constructor(readonly stateFile: string) {
    super(
      `another metering rollup is running on ${stateFile} (lock ${stateFile}.lock is held); ` +
        'wait for it to finish. A lock left by a killed process frees itself after 30 seconds.',
    );
    this.name = 'RollupLockedError';
  }
}

/** Takes the lock on `stateFile` (the file need not exist); returns the release function. */
export async function lockState(stateFile: string): Promise<() => Promise<void>> {
  fs.mkdirSync(path.dirname(stateFile), { recursive: true });
  try {
    return await lockfile.lock(stateFile, {
      lockfilePath: `${stateFile}.lock`,
      realpath: false,
      retries: 0,
      // proper-lockfile refreshes the lock while we hold it; a dead holder's lock expires after this.
      stale: 30_000,
      onCompromised: (err) => {
        throw err;
      },
    });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ELOCKED') throw new RollupLockedError(stateFile);
    throw err;
  }
}
