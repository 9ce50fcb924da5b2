import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const here = (p: string): string => fileURLToPath(new URL(p, import.meta.url));

export default defineConfig({
  resolve: {
    // Tests import the package by its name, as a user would; resolve it to the TypeScript sources.
    alias: [
      { find: /^metering-ledger\/sink\/gcs$/, replacement: here('./sink/gcs.ts') },
      { find: /^metering-ledger\/sink$/, replacement: here('./sink/index.ts') },
      { find: /^metering-ledger$/, replacement: here('./src/index.ts') },
    ],
  },
  test: {
    include: ['test/**/*.test.ts', 'examples/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
  },
});
