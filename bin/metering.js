#!/usr/bin/env node
// Launcher for the `metering` CLI: the compiled build when present (an installed package),
// otherwise the TypeScript sources through tsx (a clone of the repository).
import { existsSync } from 'node:fs';

const dist = new URL('../dist/sink/cli.js', import.meta.url);
if (existsSync(dist)) {
  await import(dist.href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import(new URL('../sink/cli.ts', import.meta.url).href);
}
