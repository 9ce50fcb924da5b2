/**
 * `npm run bench [-- NAME ...]`: runs the benchmarks in bench/ one after another (all by default),
 * each in its own process so one's memory and JIT state do not colour the next.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';

const available = fs
  .readdirSync(new URL('.', import.meta.url))
  .filter((f) => f.endsWith('.ts') && f !== 'run.ts' && !f.includes('-quick'))
  .map((f) => f.slice(0, -3))
  .sort();
const wanted = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const extra = process.argv.slice(2).filter((a) => a.startsWith('-'));
const names = wanted.length ? wanted : available;
for (const name of names) {
  if (!available.includes(name)) {
    console.error(`unknown benchmark ${JSON.stringify(name)}; available: ${available.join(', ')}`);
    process.exit(2);
  }
  console.log(`\n=== bench/${name}.ts ===`);
  const r = spawnSync(process.execPath, ['--conditions=source', '--import', 'tsx', `bench/${name}.ts`, ...extra], { stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}
