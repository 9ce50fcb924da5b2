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
// Names pick benchmarks; every flag (with its value, if the next word is not a benchmark's name or
// another flag) is handed to each benchmark: `npm run bench -- shipping --backlog-mb 50 --keep`.
const wanted: string[] = [];
const extra: string[] = [];
const args = process.argv.slice(2);
for (let i = 0; i < args.length; i++) {
  const a = args[i]!;
  if (a.startsWith('-')) {
    extra.push(a);
    const next = args[i + 1];
    if (!a.includes('=') && next !== undefined && !next.startsWith('-') && !available.includes(next)) extra.push(args[++i]!);
  } else wanted.push(a);
}
const names = wanted.length ? wanted : available;
for (const name of names) {
  if (!available.includes(name)) {
    console.error(`unknown benchmark ${JSON.stringify(name)}; available: ${available.join(', ')}`);
    process.exit(2);
  }
  console.log(`\n=== bench/${name}.ts ===`);
  const r = spawnSync(process.execPath, ['--import', 'tsx', `bench/${name}.ts`, ...extra], { stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}
