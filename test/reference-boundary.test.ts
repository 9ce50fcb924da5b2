/**
 * The reference model (test/reference/) is the tests' oracle, not part of the package: nothing the
 * package ships or its examples run may import from test/.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from './support/spawn.js';

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...sources(p));
    else if (/\.(ts|js|mjs)$/.test(e.name)) out.push(p);
  }
  return out;
}

const SPECIFIER = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)['"]([^'"]+)['"]/g;

describe('reference model boundary', () => {
  it('nothing in sink/, src/ or examples/ imports from test/', () => {
    const testDir = path.join(REPO_ROOT, 'test') + path.sep;
    const offenders: string[] = [];
    let files = 0;
    for (const top of ['sink', 'src', 'examples']) {
      for (const file of sources(path.join(REPO_ROOT, top))) {
        files++;
        for (const m of fs.readFileSync(file, 'utf8').matchAll(SPECIFIER)) {
          const spec = m[1]!;
          if (!spec.startsWith('.')) continue;
          if (path.resolve(path.dirname(file), spec).startsWith(testDir)) offenders.push(`${path.relative(REPO_ROOT, file)} imports ${spec}`);
        }
      }
    }
    expect(files).toBeGreaterThan(50);
    expect(offenders).toEqual([]);
  });

  it('the TypeScript consumer lives only in test/reference/', () => {
    for (const moved of ['run-rollup', 'state-store', 'ingest', 'entry-verdicts', 'derive-intervals', 'resource-timeline', 'watermark', 'revisions', 'hourly-rollup', 'seq-tracker']) {
      expect(fs.existsSync(path.join(REPO_ROOT, 'sink/consumer', `${moved}.ts`)), moved).toBe(false);
      expect(fs.existsSync(path.join(REPO_ROOT, 'test/reference', `${moved}.ts`)), moved).toBe(true);
    }
  });
});
