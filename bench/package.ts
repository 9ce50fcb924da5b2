/**
 * What adopting the package costs: `npm pack` of this checkout, installed into an empty project
 * (without and with the optional @google-cloud/storage peer), then per entry point the install
 * size and its import time, median of fresh processes.
 *
 *   npm run bench -- package [--runs 15] [--keep]
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const { values } = parseArgs({ options: { runs: { type: 'string', default: '15' }, keep: { type: 'boolean', default: false } } });
const RUNS = Number(values.runs);

const sh = (cmd: string, args: string[], cwd: string): string => execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const du = (dir: string): number => Number(sh('du', ['-sk', dir], '/').split('\t')[0]) * 1024;
const mib = (b: number): string => `${(b / 1024 / 1024).toFixed(1)} MiB`;
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Import time of `specifier` in a fresh process: ms from just before the import to just after it. */
function importOnce(app: string, specifier: string): number {
  const code = `const t = performance.now(); await import(${JSON.stringify(specifier)}); console.log(performance.now() - t);`;
  return Number(sh(process.execPath, ['--input-type=module', '-e', code], app));
}

function measure(app: string, specifier: string): string {
  importOnce(app, specifier); // warm the file cache
  const runs = Array.from({ length: RUNS }, () => importOnce(app, specifier));
  return `${median(runs).toFixed(0)} ms`;
}

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-package-'));
try {
  const tgz = path.join(root, sh('npm', ['pack', '--pack-destination', root, '--silent'], REPO).trim().split('\n').pop()!);
  const tarballBytes = fs.statSync(tgz).size;
  const rows: string[][] = [];
  for (const withGcs of [false, true]) {
    const app = path.join(root, withGcs ? 'app-gcs' : 'app');
    fs.mkdirSync(app);
    fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', type: 'module', private: true }));
    sh('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', tgz, ...(withGcs ? ['@google-cloud/storage@^7.22.0'] : [])], app);
    const nm = path.join(app, 'node_modules');
    const count = sh('npm', ['ls', '--all', '--parseable'], app).trim().split('\n').length - 1;
    const label = withGcs ? 'with @google-cloud/storage' : 'metering-ledger alone';
    rows.push([label, mib(du(nm)), String(count), '', '']);
    for (const entry of withGcs ? ['metering-ledger/sink', 'metering-ledger/sink/gcs'] : ['metering-ledger', 'metering-ledger/sink']) {
      rows.push([`  import '${entry}'`, '', '', measure(app, entry), '']);
    }
  }
  console.log(`tarball ${(tarballBytes / 1024).toFixed(0)} KiB; import times: median of ${RUNS} fresh processes (Node ${process.version}, ${os.cpus().length} cpus)\n`);
  console.log(['install', 'node_modules', 'packages', 'import time'].join(' | '));
  for (const r of rows) console.log(r.slice(0, 4).join(' | '));
} finally {
  if (!values.keep) fs.rmSync(root, { recursive: true, force: true });
  else console.log(`kept ${root}`);
}
