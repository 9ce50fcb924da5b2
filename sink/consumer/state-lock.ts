/**
 * One rollup writer at a time (multica's advisory lock 4246, as a lock file): a second run on the
 * same state file refuses instead of racing the first and publishing different final rows.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import lockfile from 'proper-lockfile';

/** A lock left by a killed process frees itself after this long (the holder refreshes it meanwhile). */
export const STATE_LOCK_STALE_MS = 120_000;

export class RollupLockedError extends Error {
  constructor(readonly stateFile: string) {
    super(
      `another metering rollup is running on ${stateFile} (lock ${stateFile}.lock is held); ` +
        `wait for it to finish. A lock left by a killed process frees itself after ${STATE_LOCK_STALE_MS / 1000} seconds.`,
    );
    this.name = 'RollupLockedError';
  }
}

export interface StateLock {
  release: () => Promise<void>;
  /** Throws if the lock was lost while held (then another run may have taken over): never write after that. */
  check: () => void;
}

/** Takes the lock on `stateFile` (the file need not exist). */
export async function acquireStateLock(stateFile: string): Promise<StateLock> {
  // Private like the state and outputs it will hold (sink/atomic-file.ts).
  fs.mkdirSync(path.dirname(stateFile), { recursive: true, mode: 0o700 });
  let lost: Error | undefined;
  let release: () => Promise<void>;
  try {
    release = await lockfile.lock(stateFile, {
      lockfilePath: `${stateFile}.lock`,
      realpath: false,
      retries: 0,
      stale: STATE_LOCK_STALE_MS,
      // Remember instead of throwing from a timer: the run fails before it writes anything.
      onCompromised: (err) => {
        lost = err;
      },
    });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ELOCKED') throw new RollupLockedError(stateFile);
    throw err;
  }
  return {
    release: async () => {
      if (!lost) await release();
    },
    check: () => {
      if (lost) throw new Error(`lost the lock on ${stateFile} during the run (${lost.message}); nothing was written, run again`);
    },
  };
}

/** Takes the lock on `stateFile`; returns the release function. */
export async function lockState(stateFile: string): Promise<() => Promise<void>> {
  return (await acquireStateLock(stateFile)).release;
}
