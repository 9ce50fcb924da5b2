import * as path from 'node:path';
import { listSegments, readLedger, type LedgerRecord } from 'metering-ledger';

/** Every record of every segment in a ledger directory, oldest segment first. */
export async function readAll(dir: string, includeTail = true): Promise<(LedgerRecord & { segment: string })[]> {
  const out: (LedgerRecord & { segment: string })[] = [];
  for (const segment of listSegments(dir)) {
    for await (const r of readLedger(path.join(dir, segment), { includeTail })) out.push({ ...r, segment });
  }
  return out;
}
