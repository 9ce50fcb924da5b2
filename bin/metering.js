#!/usr/bin/env node
// Launcher for the `metering` CLI. A clone of the repository (the TypeScript sources are here) runs
// its sources through tsx, so an edit is never shadowed by an older `npm run build`; set
// METERING_USE_DIST=1 to run the compiled dist/ instead. The published package has no sources and
// always runs dist/.
import { existsSync } from 'node:fs';

const dist = new URL('../dist/sink/cli.js', import.meta.url);
const sources = new URL('../sink/cli.ts', import.meta.url);
const useDist = process.env.METERING_USE_DIST === '1' || !existsSync(sources);
if (useDist) {
  if (!existsSync(dist)) {
    process.stderr.write('metering: dist/ is missing: run `npm run build` first (METERING_USE_DIST=1 runs the compiled CLI)\n');
    process.exit(1);
  }
  await import(dist.href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import(sources.href);
}
