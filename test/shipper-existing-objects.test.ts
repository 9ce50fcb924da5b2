/**
 * An object already stored under the name the shipper is about to use, but without the shipper's
 * checksum metadata (another tool stored it, or its metadata was lost): the shipper must compare
 * the bytes, not treat a missing checksum as different content.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, expect, test } from 'vitest';
import { pino } from 'pino';
import { FileRecorder } from 'metering-ledger';
import { LocalDirDestination, shipOnce, type Destination, type ObjectInfo } from 'metering-ledger/sink';
import { vmStart } from './support/entries.js';
import { tempDir } from './support/tmp.js';

const cleanups: (() => void)[] = [];
afterEach(() => cleanups.splice(0).forEach((c) => c()));

/** Hides the listing, so reconciliation cannot see what is stored and the upload path meets it. */
class UnlistedDestination extends LocalDirDestination {
  override async *list(_prefix: string): AsyncIterable<ObjectInfo> {}
}

function objectFiles(bucket: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      if (e.name.startsWith('.')) continue;
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (p.endsWith('.ndjson')) out.push(p);
    }
  };
  walk(bucket);
  return out.sort();
}

async function setup(): Promise<{ ledger: string; bucket: string; root: string }> {
  const t = tempDir('existing-objects');
  cleanups.push(t.cleanup);
  const ledger = path.join(t.dir, 'ledger');
  const rec = new FileRecorder({ dir: ledger, node: 'n1' });
  for (let i = 0; i < 50; i++) rec.emit(vmStart(`vm-${i}`));
  await rec.close();
  const bucket = path.join(t.dir, 'bucket');
  const logger = pino({ level: 'silent' });
  await shipOnce({ ledgerDir: ledger, destination: new LocalDirDestination(bucket), node: 'n1', stateDir: path.join(t.dir, 'state-1'), logger });
  // Lose every object's metadata.
  fs.rmSync(path.join(bucket, '.meta'), { recursive: true, force: true });
  return { ledger, bucket, root: t.dir };
}

async function shipAgain(ledger: string, destination: Destination, stateDir: string): Promise<void> {
  await shipOnce({ ledgerDir: ledger, destination, node: 'n1', stateDir, logger: pino({ level: 'silent' }) });
}

test('same bytes without metadata: recognised as already shipped, no new generation', async () => {
  const { ledger, bucket, root } = await setup();
  const before = objectFiles(bucket);
  expect(before).toHaveLength(1);
  await shipAgain(ledger, new UnlistedDestination(bucket), path.join(root, 'state-2'));
  expect(objectFiles(bucket)).toEqual(before);
});

test('different bytes without metadata: a conflict, shipped again under a new generation', async () => {
  const { ledger, bucket, root } = await setup();
  const [only] = objectFiles(bucket);
  fs.writeFileSync(only!, 'not what the ledger holds\n');
  await shipAgain(ledger, new UnlistedDestination(bucket), path.join(root, 'state-2'));
  const after = objectFiles(bucket);
  expect(after).toHaveLength(2);
  expect(after.some((f) => /\.g1\.\d{16}-\d{16}\.ndjson$/.test(f))).toBe(true);
});
