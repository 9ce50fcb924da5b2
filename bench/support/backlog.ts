/**
 * A ledger backlog of a given size, written by the real FileRecorder (see workload.ts): the bytes a
 * node holds after its shipper was down for a while.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { writeWorkload, type WorkloadOptions } from './workload.js';

/** Total size of the ledger segments in a ledger directory. */
export function ledgerSegments(dir: string): { files: string[]; bytes: number } {
  const files = fs
    .readdirSync(dir)
    .filter((n) => n.startsWith('ledger-') && n.endsWith('.jsonl'))
    .sort()
    .map((n) => path.join(dir, n));
  return { files, bytes: files.reduce((s, f) => s + fs.statSync(f).size, 0) };
}

/** Average bytes per entry of the workload, measured on a small sample. */
export async function bytesPerEntry(options: Omit<WorkloadOptions, 'dir' | 'entries'>): Promise<number> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-sample-'));
  try {
    const n = 20_000;
    await writeWorkload({ ...options, dir, entries: n });
    return ledgerSegments(dir).bytes / n;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export interface Backlog {
  dir: string;
  entries: number;
  bytes: number;
  segments: string[];
  /** Simulated time of the last entry. */
  lastMs: number;
}

/** Writes about `bytes` of ledger into `dir` (a little more, never less than 1 entry). */
export async function buildBacklog(dir: string, node: string, bytes: number, options: Partial<WorkloadOptions> = {}): Promise<Backlog> {
  const per = await bytesPerEntry({ node, ...options });
  const entries = Math.max(1, Math.ceil(bytes / per));
  const lastMs = await writeWorkload({ ...options, dir, node, entries });
  const s = ledgerSegments(dir);
  return { dir, entries, bytes: s.bytes, segments: s.files, lastMs };
}
