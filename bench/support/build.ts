/**
 * The CLI as users run it: compiled to JavaScript (an installed package has dist/, no tsx). Built
 * into a temporary directory, never into the checkout, whose bin/metering.js would otherwise switch
 * every other test run over to a possibly stale dist/. tsx adds ~30 MiB RSS and ~0.3 s start-up,
 * which would be measured as the shipper's own.
 *
 * Bench scripts that are measured beside the CLI (e.g. the DuckDB twin) can be compiled into the
 * same build (`benchEntries`), so both sides pay the same start-up; they import the package by its
 * name, which resolves to the build through its package.json (a package may import itself by name).
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
  /** The compiled JavaScript of a bench entry (path relative to the repository, e.g. `bench/support/x.ts`), if it was built. */
  script(entry: string): string | undefined;
}

export function buildCli(root: string, benchEntries: string[] = []): BuiltCli {
  const out = path.join(root, 'pkg');
  fs.mkdirSync(path.join(out, 'bin'), { recursive: true });
  const tsc = path.join(REPO, 'node_modules', 'typescript', 'bin', 'tsc');
  let project = 'tsconfig.build.json';
  if (benchEntries.length > 0) {
    // The repository's own config (its paths give the bench files the package's types); emit only.
    project = path.join(root, 'tsconfig.bench-build.json');
    const config = {
      extends: path.join(REPO, 'tsconfig.json'),
      compilerOptions: { noEmit: false, sourceMap: false, declaration: false, rootDir: REPO, typeRoots: [path.join(REPO, 'node_modules', '@types')] },
      include: [path.join(REPO, 'src'), path.join(REPO, 'sink'), ...benchEntries.map((e) => path.join(REPO, e))],
    };
    fs.writeFileSync(project, JSON.stringify(config, null, 2));
  }
  const r = spawnSync(process.execPath, [tsc, '-p', project, '--outDir', path.join(out, 'dist')], { cwd: REPO, encoding: 'utf8' });
  const cli = path.join(out, 'dist', 'sink', 'cli.js');
  const script = (entry: string): string | undefined => {
    if (!benchEntries.includes(entry)) return undefined;
    const js = path.join(out, 'dist', entry.replace(/\.ts$/, '.js'));
    return fs.existsSync(js) ? js : undefined;
  };
  if (!fs.existsSync(cli)) {
    return { bin: path.join(REPO, 'bin', 'metering.js'), compiled: false, note: `build failed, measuring through tsx: ${(r.stdout + r.stderr).slice(0, 500)}`, script: () => undefined };
  }
  fs.copyFileSync(path.join(REPO, 'bin', 'metering.js'), path.join(out, 'bin', 'metering.js'));
  fs.copyFileSync(path.join(REPO, 'package.json'), path.join(out, 'package.json'));
  // What the package ships beside dist/ and reads at run time: the SQL rules (the DuckDB engine
  // renders them) and the entry schema.
  fs.cpSync(path.join(REPO, 'sink', 'sql'), path.join(out, 'sink', 'sql'), { recursive: true, filter: (f) => fs.statSync(f).isDirectory() || f.endsWith('.sql') });
  fs.cpSync(path.join(REPO, 'schema'), path.join(out, 'schema'), { recursive: true });
  fs.symlinkSync(path.join(REPO, 'node_modules'), path.join(out, 'node_modules'));
  const note = r.status === 0 ? 'compiled CLI (tsc, as installed)' : 'compiled CLI (tsc reported type errors, output emitted anyway)';
  return { bin: path.join(out, 'bin', 'metering.js'), compiled: true, note, script };
}
