import * as fs from 'node:fs';

/**
 * This package's version, read from its package.json: two levels up from the sources
 * (sink/version.ts) and three from the build (dist/sink/version.js), so found by walking up.
 */
export const PACKAGE_VERSION: string = (() => {
  for (let dir = new URL('./', import.meta.url); ; ) {
    try {
      const pkg = JSON.parse(fs.readFileSync(new URL('package.json', dir), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'metering-ledger' && pkg.version) return pkg.version;
    } catch {
      // not here: one level up
    }
    const up = new URL('../', dir);
    if (up.href === dir.href) return '0.0.0-unknown';
    dir = up;
  }
})();
