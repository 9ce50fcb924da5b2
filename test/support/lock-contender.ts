/**
 * A warm contender for the shipper lock: prints "ready", and on "go" (stdin) tries to take the lock
 * of the ledger directory in argv[2]; prints "got" (and holds it until killed) or "locked <pid>".
 * Warm so that two contenders really start their attempts at the same moment.
 */
import * as readline from 'node:readline';
import { pino } from 'pino';
import { acquireShipperLock, ShipperLockedError } from '../../sink/shipper/lock.js';

const dir = process.argv[2]!;
const log = pino({ level: 'silent' });
const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  if (line.trim() !== 'go') return;
  acquireShipperLock(dir, log, () => {}).then(
    () => process.stdout.write('got\n'),
    (err: unknown) => process.stdout.write(err instanceof ShipperLockedError ? `locked ${err.holderPid ?? '?'}\n` : `error ${(err as Error).message}\n`),
  );
});
process.stdout.write('ready\n');
setInterval(() => {}, 1 << 30);
