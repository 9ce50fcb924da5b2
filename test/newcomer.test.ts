/**
 * A newcomer's first half hour, scripted: from a fresh clone (the README's `npm install && npm run
 * demo`) and from the packed tarball installed into an empty project. Both then run `--help` of
 * every command and feed the CLI each bad input a user trips over, checking the message and the
 * exit code, and that nothing was written. Real npm, real processes, real files.
 */
import { execFile, execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliError } from './support/cli-error.js';
import { REPO_ROOT } from './support/spawn.js';
import { tempDir } from './support/tmp.js';

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

/** A newcomer's environment: none of the suite's own settings leak in. */
function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('METERING_') && !k.startsWith('VITEST') && k !== 'NODE_OPTIONS' && !k.startsWith('npm_')) env[k] = v;
  return { ...env, NO_COLOR: '1', ...extra };
}

function exec(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): Promise<Ran> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd, env: cleanEnv(env), maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

const npm = (args: string[], cwd: string): Promise<Ran> => exec('npm', [...args, '--no-audit', '--no-fund', '--prefer-offline'], cwd);

/** What a build, an install or a run leaves in a checkout: never part of a clone. */
const UNTRACKED = new Set(['node_modules', 'dist', '.demo', 'demo-output', 'coverage', '.bench', '.git']);

/** The files of this checkout a `git clone` has: tracked (and new, not ignored) files, as they are now. */
function trackedFiles(): string[] {
  try {
    return execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: REPO_ROOT, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, stdio: ['ignore', 'pipe', 'ignore'] })
      .split('\0')
      .filter(Boolean);
  } catch {
    // Not a git checkout (an exported tree): everything but what builds and runs leave behind.
    return (fs.readdirSync(REPO_ROOT, { recursive: true, withFileTypes: true }) as fs.Dirent[])
      .filter((e) => e.isFile())
      .map((e) => path.relative(REPO_ROOT, path.join(e.parentPath, e.name)))
      .filter((rel) => !UNTRACKED.has(rel.split(path.sep)[0]!) && !rel.endsWith('.tgz') && !rel.endsWith('.log'));
  }
}

function cloneInto(dest: string): void {
  for (const rel of trackedFiles()) {
    const from = path.join(REPO_ROOT, rel);
    if (!fs.existsSync(from) || fs.statSync(from).isDirectory()) continue;
    fs.mkdirSync(path.join(dest, path.dirname(rel)), { recursive: true });
    fs.copyFileSync(from, path.join(dest, rel));
    fs.chmodSync(path.join(dest, rel), fs.statSync(from).mode);
  }
}

type Metering = (args: string[]) => Promise<Ran>;

const COMMANDS = ['ship', 'status', 'rollup', 'usage'];

/** --version, and --help of the CLI and of every command, with the required flags marked. */
async function checkHelp(metering: Metering, version: string): Promise<void> {
  for (const flag of ['--version', '-V']) {
    const v = await metering([flag]);
    expect(v.code, v.stderr).toBe(0);
    expect(v.stdout.trim()).toBe(version);
  }
  const top = await metering(['--help']);
  expect(top.code).toBe(0);
  for (const c of COMMANDS) expect(top.stdout).toMatch(new RegExp(`^ {2}${c}\\b`, 'm'));
  expect(top.stdout).toMatch(/Exit codes:/);
  for (const c of COMMANDS) {
    const h = await metering([c, '--help']);
    expect(h.code, `${c} --help: ${h.stderr}`).toBe(0);
    expect(h.stdout).toContain(`Usage: metering ${c}`);
  }
  expect((await metering(['rollup', '--help'])).stdout).toMatch(/--source <url>\s+\(required\)/);
  expect((await metering(['rollup', '--help'])).stdout).toMatch(/--out <dir>\s+\(required\)/);
  expect((await metering(['ship', '--help'])).stdout).toMatch(/--dest <url>\s+\(required\)/);
  expect((await metering(['usage', '--help'])).stdout).not.toMatch(/--out <dir>\s+\(required\)/);
}

/** Every date error carries the same hint. */
const DATE_HINT = /^use ISO 8601 with a zone, e\.g\. 2026-11-24T10:00:00Z, or a date 2026-11-24 \(UTC midnight\)$/;

/** Each bad input: exit 2, its message (pino JSON, not a terminal), and nothing written. */
async function checkBadInputs(metering: Metering, root: string, bucket: string): Promise<void> {
  const aFile = path.join(root, 'a-file');
  fs.writeFileSync(aFile, 'not a directory\n');
  const out = path.join(root, 'never-created');
  const cases: Array<{ args: string[]; msg: RegExp; hint?: RegExp }> = [
    { args: ['usage', '--source', bucket, '--from', '2026-02-30'], msg: /^--from: invalid time "2026-02-30": 2026-02 has no day 30$/, hint: DATE_HINT },
    { args: ['usage', '--source', bucket, '--from', '2026-11-20T25:00:00Z'], msg: /^--from: invalid time .*: 25:00:00 is not a time of day$/, hint: DATE_HINT },
    { args: ['usage', '--source', bucket, '--from', '20-11-2026'], msg: /^--from: invalid time "20-11-2026": not an ISO 8601 time/, hint: DATE_HINT },
    { args: ['usage', '--source', bucket, '--to', 'yesterday'], msg: /^--to: invalid time "yesterday"/, hint: DATE_HINT },
    { args: ['rollup', '--source', bucket, '--out', out, '--now', '2026-11-31T00:00:00Z'], msg: /^--now: invalid time .*2026-11 has no day 31$/, hint: DATE_HINT },
    { args: ['usage', '--source', bucket, '--from', '2026-11-21', '--to', '2026-11-20', '--out', out], msg: /--from 2026-11-21T00:00:00.000Z is not before --to 2026-11-20T00:00:00.000Z/ },
    { args: ['usage', '--source', bucket, '--from', '2026-11-20', '--to', '2026-11-20', '--out', out], msg: /is not before --to/ },
    { args: ['usage', '--source', aFile], msg: /--source .*a-file is a file, not a directory/, hint: /bucket directory/ },
    { args: ['rollup', '--source', aFile, '--out', out], msg: /--source .*a-file is a file, not a directory/ },
    { args: ['rollup', '--source', path.join(root, 'no-such-bucket'), '--out', out], msg: /--source .*no-such-bucket does not exist/ },
    { args: ['rollup', '--source', bucket, '--out', aFile], msg: /--out .*a-file is a file, not a directory/ },
    { args: ['rollup', '--source', bucket], msg: /required option '--out <dir>' not specified/, hint: /metering rollup --help/ },
    { args: ['rollup', '--source', bucket, '--out', out, '--grace', '5'], msg: /invalid duration "5"/ },
    { args: ['ship', '--once', '--ledger-dir', aFile, '--dest', path.join(root, 'b2')], msg: /--ledger-dir .*a-file is a file, not a directory/ },
    { args: ['status', '--ledger-dir', aFile], msg: /--ledger-dir .*a-file is a file, not a directory/ },
    { args: ['usage', '--source', bucket, '--by', 'planet'], msg: /Allowed choices are resource, node, hypervisor/ },
    { args: ['nonsense'], msg: /unknown command 'nonsense'/ },
  ];
  for (const c of cases) {
    const r = await metering(c.args);
    const what = `metering ${c.args.join(' ')}`;
    expect(r.code, `${what}\n${r.stderr}`).toBe(2);
    const rec = cliError(r.stderr);
    expect(rec.msg, what).toMatch(c.msg);
    expect(rec.exit_code, what).toBe(2);
    expect(rec.hint, what).toBeTruthy();
    if (c.hint) expect(rec.hint, what).toMatch(c.hint);
    expect(r.stdout, what).toBe('');
    // pino JSON only: every stderr line parses.
    for (const line of r.stderr.split('\n').filter(Boolean)) expect(() => JSON.parse(line), `${what}: ${line}`).not.toThrow();
  }
  expect(fs.existsSync(out), '--out was created by a refused run').toBe(false);
  expect(fs.existsSync(path.join(root, 'b2')), '--dest was created by a refused run').toBe(false);
}

const version = (JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;

describe('a newcomer, from a fresh clone', () => {
  let root: string;
  let cleanup: () => void;
  let clone: string;
  const metering: Metering = (args) => exec(process.execPath, ['bin/metering.js', ...args], clone);

  beforeAll(async () => {
    ({ dir: root, cleanup } = tempDir('newcomer-clone'));
    clone = path.join(root, 'metering-ledger');
    cloneInto(clone);
  }, 120_000);
  afterAll(() => cleanup());

  it('npm install && npm run demo, as the README says', async () => {
    const install = await npm(['install'], clone);
    expect(install.code, install.stderr).toBe(0);
    const demo = await exec('npm', ['run', 'demo'], clone);
    expect(demo.code, demo.stderr + demo.stdout).toBe(0);
    expect(demo.stdout).toContain('5/5  Done');
    expect(demo.stdout).toMatch(/TOTAL\s+\d+\.\d{3}/);
    expect(fs.existsSync(path.join(clone, '.demo', 'usage.html'))).toBe(true);
    const help = await exec('npm', ['run', 'demo', '--', '--help'], clone);
    expect(help.stdout).toMatch(/Takes about 20 s/);
  }, 240_000);

  it('--version and --help of every command', async () => {
    await checkHelp(metering, version);
  }, 120_000);

  it('each bad input: its message, exit 2, nothing written', async () => {
    await checkBadInputs(metering, root, path.join(clone, '.demo', 'bucket'));
  }, 180_000);

  it('runs its own sources after a build, unless METERING_USE_DIST=1', async () => {
    const build = await exec('npm', ['run', 'build'], clone);
    expect(build.code, build.stderr + build.stdout).toBe(0);
    // A stale build must not shadow the sources: make dist/ recognisably different.
    const cli = path.join(clone, 'dist', 'sink', 'cli.js');
    fs.writeFileSync(cli, "process.stdout.write('stale dist\\n');\n");
    expect((await metering(['--version'])).stdout.trim()).toBe(version);
    const dist = await exec(process.execPath, ['bin/metering.js', '--version'], clone, { METERING_USE_DIST: '1' });
    expect(dist.stdout.trim()).toBe('stale dist');
  }, 180_000);
});

describe('a newcomer, from the packed tarball', () => {
  let root: string;
  let cleanup: () => void;
  let app: string;
  let tarball: string;
  const metering: Metering = (args) => exec(process.execPath, [path.join(app, 'node_modules', '.bin', 'metering'), ...args], app);

  beforeAll(async () => {
    ({ dir: root, cleanup } = tempDir('newcomer-tarball'));
    const src = path.join(root, 'src-clone');
    cloneInto(src);
    // Pack from a clean copy (its own install and build), as a release would.
    const ci = await npm(['ci'], src);
    expect(ci.code, ci.stderr).toBe(0);
    const packed = await exec('npm', ['pack', '--pack-destination', root], src);
    expect(packed.code, packed.stderr).toBe(0);
    tarball = path.join(root, packed.stdout.trim().split('\n').pop()!);
    app = path.join(root, 'app');
    fs.mkdirSync(app);
    fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'vm-manager-app', version: '1.0.0', type: 'module', private: true }));
  }, 240_000);
  afterAll(() => cleanup());

  it('holds dist, LICENSE and no sources, source maps or source-only export conditions', async () => {
    const list = await exec('tar', ['tzf', tarball], root);
    const files = list.stdout.split('\n').filter(Boolean).map((f) => f.replace(/^package\//, ''));
    expect(files).toContain('LICENSE');
    expect(files).toContain('dist/src/index.js');
    expect(files).toContain('dist/sink/index.d.ts');
    expect(files.filter((f) => f.endsWith('.map'))).toEqual([]);
    expect(files.filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))).toEqual([]);
    expect(files.filter((f) => f.endsWith('.tgz'))).toEqual([]);
    const pkg = JSON.parse((await exec('tar', ['xzf', tarball, '-O', 'package/package.json'], root)).stdout) as {
      exports: Record<string, unknown>;
      dependencies: Record<string, string>;
      peerDependencies: Record<string, string>;
      peerDependenciesMeta: Record<string, { optional?: boolean }>;
    };
    // The README's relative docs/ links resolve inside the package itself (there is no repository URL to resolve them against).
    const readme = fs.readFileSync(path.resolve('README.md'), 'utf8');
    const links = [...readme.matchAll(/\]\((docs\/[^)#]+)/g)].map((m) => m[1]!);
    expect(links.length).toBeGreaterThan(0);
    for (const link of links) expect(files, link).toContain(link);
    expect(JSON.stringify(pkg.exports)).not.toContain('"source"');
    expect(pkg.dependencies['@google-cloud/storage']).toBeUndefined();
    expect(pkg.dependencies['ndjson']).toBeUndefined();
    expect(pkg.peerDependenciesMeta['@google-cloud/storage']?.optional).toBe(true);
  });

  it('installs into an empty project without the Google Cloud client', async () => {
    const install = await npm(['install', tarball], app);
    expect(install.code, install.stderr).toBe(0);
    expect(fs.existsSync(path.join(app, 'node_modules', '@google-cloud', 'storage'))).toBe(false);
    expect(fs.existsSync(path.join(app, 'node_modules', 'ndjson'))).toBe(false);
    // Both entries import without it, also under a monorepo's `--conditions=source`.
    for (const conditions of [[], ['--conditions=source']]) {
      const r = await exec(process.execPath, [...conditions, '--input-type=module', '-e', "const a = await import('metering-ledger'); const b = await import('metering-ledger/sink'); console.log(typeof a.getRecorder, typeof b.runRollup)"], app);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout.trim()).toBe('function function');
    }
  }, 120_000);

  it('types resolve under nodenext (and catch a wrong call)', async () => {
    const tsc = path.join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    fs.writeFileSync(
      path.join(app, 'tsconfig.json'),
      JSON.stringify({ compilerOptions: { module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', strict: true, noEmit: true, skipLibCheck: true, types: [] }, include: ['*.ts'] }),
    );
    fs.writeFileSync(path.join(app, 'ok.ts'), "import { KINDS, REASONS, type Recorder } from 'metering-ledger';\nimport { computeUsage, type UsageTable } from 'metering-ledger/sink';\nexport const use = (r: Recorder): string | undefined => r.emit({ kind: KINDS.VM_COMPUTE_START, reason: REASONS.BOOT, vm_id: 'vm-1', shape: { cpu: 1, mem_bytes: 1, storage_bytes: 1 } });\nexport const t: UsageTable = computeUsage([]);\n");
    const ok = await exec(process.execPath, [tsc, '-p', '.'], app);
    expect(ok.code, ok.stdout).toBe(0);
    fs.writeFileSync(path.join(app, 'bad.ts'), "import type { Recorder } from 'metering-ledger';\nexport const use = (r: Recorder): void => { r.emit(42); };\n");
    const bad = await exec(process.execPath, [tsc, '-p', '.'], app);
    expect(bad.code).not.toBe(0);
    expect(bad.stdout).toMatch(/bad\.ts/);
    fs.rmSync(path.join(app, 'bad.ts'));
  }, 120_000);

  it('a small demo from the installed package: record, ship, roll up, usage', async () => {
    const ledger = path.join(app, 'ledger');
    const bucket = path.join(app, 'bucket');
    fs.writeFileSync(
      path.join(app, 'record.mjs'),
      `import { FileRecorder, KINDS, REASONS } from 'metering-ledger';
const rec = new FileRecorder({ dir: ${JSON.stringify(ledger)}, node: 'node-1' });
const shape = { cpu: 2, mem_bytes: 2 ** 32, storage_bytes: 0 };
rec.emit({ kind: KINDS.VM_COMPUTE_START, reason: REASONS.BOOT, vm_id: 'vm-1', shape, emitted_at: '2026-11-20T01:00:00.000Z' });
rec.emit({ kind: KINDS.VM_COMPUTE_STOP, reason: REASONS.STOP_USER, vm_id: 'vm-1', shape, emitted_at: '2026-11-20T04:00:00.000Z' });
rec.close();
`,
    );
    expect((await exec(process.execPath, ['record.mjs'], app)).code).toBe(0);
    const shipped = await metering(['ship', '--once', '--ledger-dir', ledger, '--dest', bucket, '--node', 'node-1']);
    expect(shipped.code, shipped.stderr).toBe(0);
    // The consumer's engine is an optional peer: without it, rollup says what to install (exit 2, nothing written).
    const bare = await metering(['rollup', '--source', bucket, '--out', path.join(app, 'usage'), '--now', '2026-11-21T00:00:00Z']);
    expect(bare.code, bare.stderr).toBe(2);
    expect(cliError(bare.stderr).hint).toMatch(/^npm install @duckdb\/node-api@/);
    expect(fs.existsSync(path.join(app, 'usage'))).toBe(false);
    // Installed at the version this repository tests with (the hint's own command is checked below).
    const duckdb = (JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> }).devDependencies['@duckdb/node-api']!;
    const added = await npm(['install', `@duckdb/node-api@${duckdb}`], app);
    expect(added.code, added.stderr).toBe(0);
    const rolled = await metering(['rollup', '--source', bucket, '--out', path.join(app, 'usage'), '--now', '2026-11-21T00:00:00Z']);
    expect(rolled.code, rolled.stderr).toBe(0);
    const usage = await metering(['usage', '--source', bucket, '--now', '2026-11-21T00:00:00Z', '--json']);
    expect(usage.code, usage.stderr).toBe(0);
    // 3 h x 2 vCPU = 6 vCPU-hours.
    expect((JSON.parse(usage.stdout) as { total: { cpu_ms: string } }).total.cpu_ms).toBe(String(6 * 3_600_000));
  }, 120_000);

  it('--version and --help of every command', async () => {
    await checkHelp(metering, version);
  }, 120_000);

  it("the install hint of a rollup without @duckdb/node-api is a command that works", async () => {
    const bare = path.join(root, 'bare-app');
    fs.mkdirSync(bare);
    fs.writeFileSync(path.join(bare, 'package.json'), JSON.stringify({ name: 'consumer-app', version: '1.0.0', type: 'module', private: true }));
    expect((await npm(['install', tarball], bare)).code).toBe(0);
    const bucket = path.join(bare, 'bucket');
    fs.mkdirSync(bucket);
    const bin = path.join(bare, 'node_modules', '.bin', 'metering');
    const missing = await exec(process.execPath, [bin, 'rollup', '--source', bucket, '--out', path.join(bare, 'out')], bare);
    expect(missing.code, missing.stderr).toBe(2);
    const hint = cliError(missing.stderr).hint!;
    expect(hint).toMatch(/^npm install @duckdb\/node-api@\S+$/);
    const installed = await npm(hint.split(' ').slice(1), bare);
    expect(installed.code, `${hint}: ${installed.stderr}`).toBe(0);
    const rolled = await exec(process.execPath, [bin, 'rollup', '--source', bucket, '--out', path.join(bare, 'out')], bare);
    expect(rolled.code, rolled.stderr).toBe(0);
  }, 180_000);

  it('each bad input: its message, exit 2, nothing written; gs:// says what to install', async () => {
    const bucket = path.join(app, 'bucket');
    fs.mkdirSync(bucket, { recursive: true });
    await checkBadInputs(metering, root, bucket);
    for (const args of [
      ['ship', '--once', '--ledger-dir', path.join(app, 'ledger'), '--dest', 'gs://my-bucket/metering'],
      ['rollup', '--source', 'gs://my-bucket/metering', '--out', path.join(root, 'gs-out')],
    ]) {
      const r = await metering(args);
      expect(r.code, r.stderr).toBe(2);
      const rec = cliError(r.stderr);
      expect(rec.msg).toMatch(/needs the optional package @google-cloud\/storage, which is not installed/);
      expect(rec.hint).toBe('npm install @google-cloud/storage@^7.22.0');
    }
    expect(fs.existsSync(path.join(root, 'gs-out'))).toBe(false);
  }, 180_000);
});
