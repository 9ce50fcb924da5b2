import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** A fresh temporary directory, removed by the returned cleanup (call it in afterEach/afterAll). */
export function tempDir(label = 'metering'): { dir: string; cleanup: () => void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${label}-`));
  return { dir, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/** Collects pino log records in memory (pass `logger` to a recorder). */
export async function memoryLogger(): Promise<{ logger: import('pino').Logger; records: Record<string, unknown>[] }> {
  const { pino } = await import('pino');
  const records: Record<string, unknown>[] = [];
  const stream = { write: (line: string) => void records.push(JSON.parse(line) as Record<string, unknown>) };
  return { logger: pino({ level: 'debug' }, stream), records };
}
