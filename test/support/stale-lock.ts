import * as fs from 'node:fs';
import { expect } from 'vitest';

/**
 * A killed run's state lock (`<state>.lock`, which must be there) made as stale as it will be after
 * STATE_LOCK_STALE_MS, so the next run takes it over: no waiting for time.
 */
export function expireStateLock(stateFile: string): void {
  const lockDir = `${stateFile}.lock`;
  expect(fs.existsSync(lockDir), `the killed run's lock ${lockDir}`).toBe(true);
  const longAgo = new Date(Date.now() - 3_600_000);
  fs.utimesSync(lockDir, longAgo, longAgo);
}
