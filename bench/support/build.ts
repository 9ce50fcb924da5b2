/**
 * The CLI as users run it: compiled to JavaScript (an installed package has dist/, no tsx). Built
 * into a temporary directory, never into the checkout, whose bin/metering.js would otherwise switch
 * every other test run over to a possibly stale dist/. tsx adds ~30 MiB RSS and ~0.3 s start-up,
 * which would be measured as the shipper's own.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { REPO } from './child.js';

export interface BuiltCli {
  /** Absolute path of bin/metering.js in the build (or in the checkout when the build failed). */
  bin: string;
  compiled: boolean;
  note: string;
}

export function buildCli(root: string): BuiltCli {
  const out = path.join(root, 'pkg');
  fs.mkdirSync(path.join(out, 'bin'), { recursive: true });
  const tsc = path.join(REPO, 'node_modules', 'typescript', 'bin', 'tsc');
  const r = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.build.json', '--outDir', path.join(out, 'dist')], { cwd: REPO, encoding: 'utf8' });
  const cli = path.join(out, 'dist', 'sink', 'cli.js');
  if (!fs.existsSync(cli)) {
    return { bin: path.join(REPO, 'bin', 'metering.js'), compiled: false, note: `build failed, measuring through tsx: ${(r.stdout + r.stderr).slice(0, 500)}` };
  }
  fs.copyFileSync(path.join(REPO, 'bin', 'metering.js'), path.join(out, 'bin', 'metering.js'));
  fs.copyFileSync(path.join(REPO, 'package.json'), path.join(out, 'package.json'));
  fs.symlinkSync(path.join(REPO, 'node_modules'), path.join(out, 'node_modules'));
  const note = r.status === 0 ? 'compiled CLI (tsc, as installed)' : 'compiled CLI (tsc reported type errors, output emitted anyway)';
  return { bin: path.join(out, 'bin', 'metering.js'), compiled: true, note };
}
