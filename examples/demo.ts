#!/usr/bin/env node
/**
 * npm run demo: the whole pipeline on the embedded defaults (about 20 s on 2 cores).
 *
 *   1. three nodes live through a simulated day: the example VM manager (examples/vm-manager) runs as
 *      many concurrent processes per node, each appending to its node's ledger;
 *   2. `metering ship --once` uploads every node's ledger into a local bucket directory;
 *   3. `metering rollup` turns the objects into intervals and hourly rows;
 *   4. `metering usage` prints the bill and writes an HTML report.
 *
 * Everything lives under <repo>/.demo (or --dir), wiped at the start of every run.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { describeKind, listSegments, readLedger } from 'metering-ledger';
import { BARRIERS, instant, LANES, minuteOfDay, NODES, demoDayStart, type DemoCommand, type DemoLane, type DemoStep } from './demo-plan.js';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const VM_MANAGER = path.join(REPO, 'examples', 'vm-manager', 'cli.ts');
const METERING = path.join(REPO, 'bin', 'metering.js');
const MARKER = '.metering-demo';

const tty = process.stdout.isTTY === true && !process.env.NO_COLOR;
const paint = (code: string) => (s: string) => (tty ? `\x1b[${code}m${s}\x1b[0m` : s);
const bold = paint('1');
const dim = paint('2');
const green = paint('32');
const yellow = paint('33');
const red = paint('31');
const cyan = paint('36');

class DemoError extends Error {}

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

function run(argv: string[], env: NodeJS.ProcessEnv = {}): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, argv, { cwd: REPO, env: { ...process.env, METERING_LOG_LEVEL: 'warn', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr }));
  });
}

const runMetering = (args: string[]): Promise<Ran> => run([METERING, ...args]);

interface Layout {
  root: string;
  bucket: string;
  rollup: string;
  html: string;
  node: (node: string) => { store: string; ledger: string };
}

function layout(root: string): Layout {
  return {
    root,
    bucket: path.join(root, 'bucket'),
    rollup: path.join(root, 'rollup'),
    html: path.join(root, 'usage.html'),
    node: (node) => ({ store: path.join(root, 'nodes', node, 'store.json'), ledger: path.join(root, 'nodes', node, 'ledger') }),
  };
}

/** Starts clean, but only ever deletes a directory this demo created. */
function freshDir(root: string): void {
  if (fs.existsSync(root)) {
    const entries = fs.readdirSync(root);
    if (entries.length > 0 && !entries.includes(MARKER)) {
      throw new DemoError(`${root} exists and was not made by the demo (no ${MARKER} in it); pick another --dir or remove it yourself`);
    }
    fs.rmSync(root, { recursive: true, force: true });
  }
  fs.mkdirSync(root, { recursive: true });
  fs.writeFileSync(path.join(root, MARKER), 'made by `npm run demo`; deleted and re-created by every run\n');
}

let stepNo = 0;
const STEPS = 5;
function header(title: string): void {
  stepNo++;
  console.log(`\n${bold(cyan(`━━ ${stepNo}/${STEPS}  ${title}`))}`);
}

function indent(text: string): string {
  return text
    .trimEnd()
    .split('\n')
    .map((l) => (l ? `  ${l}` : ''))
    .join('\n');
}

function firstLines(text: string, max = 2): string {
  return text.trim().split('\n').filter(Boolean).slice(0, max).join(' · ');
}

// ---------------------------------------------------------------------------------------------
// 1. The simulated day

interface StepResult {
  at: string;
  node: string;
  command: DemoCommand;
  note?: string;
  ran: Ran;
}

async function runStep(lay: Layout, dayStart: number, node: string, step: DemoStep): Promise<StepResult[]> {
  const { store, ledger } = lay.node(node);
  const at = instant(dayStart, step.at).toISOString();
  const ran = await Promise.all(
    step.run.map((c) => run(['--import', 'tsx', VM_MANAGER, '--store', store, '--ledger-dir', ledger, '--node', node, '--vmm', 'simulated', '--at', at, ...c.args])),
  );
  return step.run.map((command, i) => ({ at: step.at, node, command, note: i === 0 ? step.note : undefined, ran: ran[i]! }));
}

function describeResult(r: StepResult): string {
  const cmdText = r.command.args.join(' ');
  const ok = r.ran.code === 0;
  const expected = ok !== (r.command.fails === true);
  const out = ok ? firstLines(r.ran.stdout) : firstLines(r.ran.stderr).replace(/^vm-manager: /, '');
  const mark = !expected ? red('✗') : ok ? green('✓') : yellow('!');
  const note = r.note ? dim(`  # ${r.note}`) : '';
  return `  ${r.at}  ${r.node}  ${mark} ${cmdText.padEnd(44)} ${dim('→')} ${out}${note}`;
}

async function simulateDay(lay: Layout, dayStart: number): Promise<number> {
  const cursor = new Map<DemoLane, number>(LANES.map((lane) => [lane, 0]));
  let processes = 0;
  for (const barrier of BARRIERS) {
    const until = minuteOfDay(barrier);
    // Every lane plays its steps before the barrier, all lanes at once; a lane's own steps stay in order.
    const results = (
      await Promise.all(
        LANES.map(async (lane) => {
          const out: StepResult[] = [];
          for (let i = cursor.get(lane)!; i < lane.steps.length && minuteOfDay(lane.steps[i]!.at) < until; i++) {
            out.push(...(await runStep(lay, dayStart, lane.node, lane.steps[i]!)));
            cursor.set(lane, i + 1);
          }
          return out;
        }),
      )
    ).flat();
    // Then every node reconciles at the barrier: baselines for what runs and exists.
    const reconciles = (await Promise.all(NODES.map((node) => runStep(lay, dayStart, node, { at: barrier, run: [{ args: ['reconcile'] }] })))).flat();
    const all = [...results, ...reconciles].sort((a, b) => minuteOfDay(a.at) - minuteOfDay(b.at) || a.node.localeCompare(b.node));
    for (const r of all) console.log(describeResult(r));
    processes += all.length;
    const broken = all.find((r) => (r.ran.code === 0) === (r.command.fails === true));
    if (broken) {
      throw new DemoError(`vm-manager ${broken.command.args.join(' ')} on ${broken.node} ${broken.command.fails ? 'should have failed' : 'failed'}:\n${broken.ran.stderr || broken.ran.stdout}`);
    }
  }
  return processes;
}

async function summarizeLedgers(lay: Layout): Promise<void> {
  console.log(`\n  ${bold('what the nodes recorded')}  ${dim('(read back from each ledger directory)')}`);
  console.log(dim(`  ${'node'.padEnd(8)} ${'entries'.padStart(7)} ${'starts'.padStart(7)} ${'stops'.padStart(6)} ${'crashes'.padStart(8)} ${'baselines'.padStart(10)} ${'writers'.padStart(8)}`));
  let sample: string | undefined;
  for (const node of NODES) {
    const dir = lay.node(node).ledger;
    const c = { entries: 0, start: 0, stop: 0, crash: 0, running: 0, invalid: 0 };
    const writers = new Set<string>();
    for (const seg of listSegments(dir)) {
      for await (const r of readLedger(path.join(dir, seg))) {
        if (r.type !== 'entry') {
          c.invalid++;
          continue;
        }
        c.entries++;
        writers.add(r.entry.writer);
        c[describeKind(r.entry.kind)!.phase]++;
        if (r.entry.reason === 'stop-crash') c.crash++;
        if (r.entry.reason === 'restore' && r.entry.kind === 'vm.compute.start') sample ??= r.line.toString('utf8');
      }
    }
    if (c.invalid > 0) throw new DemoError(`${node}: ${c.invalid} invalid ledger lines`);
    console.log(`  ${node.padEnd(8)} ${String(c.entries).padStart(7)} ${String(c.start).padStart(7)} ${String(c.stop).padStart(6)} ${String(c.crash).padStart(8)} ${String(c.running).padStart(10)} ${String(writers.size).padStart(8)}`);
  }
  if (sample) console.log(`\n  ${bold('one ledger line')} ${dim('(the restore of db-1 booting from its snapshot)')}\n  ${dim(sample)}`);
}

// ---------------------------------------------------------------------------------------------
// 2-4. Ship, roll up, report

function registeredCommands(help: string): Set<string> {
  const section = help.split(/^Commands:$/m)[1] ?? '';
  return new Set([...section.matchAll(/^ {2}([a-z][a-z-]*)\b/gm)].map((m) => m[1]!));
}

function countFiles(dir: string): number {
  if (!fs.existsSync(dir)) return 0;
  let n = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) if (e.isFile()) n++;
  return n;
}

function missing(command: string): never {
  throw new DemoError(
    `\`metering ${command}\` is not in this checkout yet (node bin/metering.js --help does not list it). ` +
      `The demo stops here; everything up to this step ran and is under the demo directory.`,
  );
}

async function ship(lay: Layout, commands: Set<string>): Promise<void> {
  if (!commands.has('ship')) missing('ship');
  const results = await Promise.all(NODES.map((node) => runMetering(['ship', '--ledger-dir', lay.node(node).ledger, '--dest', lay.bucket, '--once', '--node', node])));
  results.forEach((r, i) => {
    if (r.code !== 0) throw new DemoError(`metering ship for ${NODES[i]} exited ${r.code}:\n${r.stderr || r.stdout}`);
  });
  for (const node of NODES) {
    const objects = countFiles(path.join(lay.bucket, 'ledger', `node=${node}`));
    console.log(`  ${green('✓')} ${node}: metering ship --once ${dim('→')} ${objects} object${objects === 1 ? '' : 's'} under bucket/ledger/node=${node}/, progress in bucket/nodes/${node}.json`);
  }
  const quarantined = countFiles(path.join(lay.bucket, 'quarantine'));
  if (quarantined > 0) console.log(`  ${yellow('!')} ${quarantined} quarantine object(s): malformed lines`);
}

async function rollup(lay: Layout, commands: Set<string>): Promise<void> {
  if (!commands.has('rollup')) missing('rollup');
  const args = ['rollup', '--source', lay.bucket, '--out', lay.rollup, '--state', path.join(lay.rollup, 'state.duckdb'), '--grace', '0s'];
  const r = await runMetering(args);
  if (r.code !== 0) throw new DemoError(`metering ${args.join(' ')} exited ${r.code}:\n${r.stderr || r.stdout}`);
  console.log(indent(r.stdout));
}

async function usage(lay: Layout, commands: Set<string>, dayStart: number): Promise<void> {
  if (!commands.has('usage')) missing('usage');
  const from = new Date(dayStart).toISOString();
  const to = new Date(dayStart + 86_400_000).toISOString();
  // Same source string and state as the rollup: usage reads incrementally (nothing new here).
  const common = ['usage', '--source', lay.bucket, '--state', path.join(lay.rollup, 'state.duckdb'), '--from', from, '--to', to];
  const tables: string[] = [];
  for (const args of [[...common, '--html', lay.html], [...common, '--by', 'node']]) {
    const r = await runMetering(args);
    if (r.code !== 0) throw new DemoError(`metering ${args.join(' ')} exited ${r.code}:\n${r.stderr || r.stdout}`);
    tables.push(indent(r.stdout));
  }
  console.log(tables.join('\n\n'));
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      dir: { type: 'string' },
      day: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(`Usage: npm run demo [-- --dir DIR] [-- --day YYYY-MM-DD]

Runs the example VM manager through a simulated day on three nodes, ships the ledgers into a local
bucket directory, rolls them up and prints the usage table. Takes about 20 s on 2 cores
(a few hundred short-lived manager processes).

  --dir DIR         where everything goes (default: <repo>/.demo; wiped at the start of every run)
  --day YYYY-MM-DD  the simulated day (default: yesterday, UTC)`);
    return;
  }
  let dayStart = demoDayStart();
  if (values.day !== undefined) {
    if (!/^\d{4}-\d{2}-\d{2}$/.test(values.day) || Number.isNaN(Date.parse(`${values.day}T00:00:00Z`))) throw new DemoError(`--day must be YYYY-MM-DD, got ${JSON.stringify(values.day)}`);
    dayStart = Date.parse(`${values.day}T00:00:00Z`);
    if (dayStart + 86_400_000 > Date.now()) throw new DemoError('--day must be a day that is over (the rollup finalizes only the past)');
  }
  const lay = layout(path.resolve(values.dir ?? path.join(REPO, '.demo')));
  const began = Date.now();
  freshDir(lay.root);
  const day = new Date(dayStart).toISOString().slice(0, 10);
  console.log(bold(`metering-ledger demo`) + dim(`  — everything under ${lay.root}`));

  header(`A day on ${NODES.length} nodes: ${day}, simulated clock, several manager processes per node at once`);
  const helpRun = runMetering(['--help']);
  const processes = await simulateDay(lay, dayStart);
  console.log(dim(`  ${processes} vm-manager processes; each node's store under a file lock, each ledger shared by all of them`));
  await summarizeLedgers(lay);
  const help = await helpRun;
  const commands = registeredCommands(help.stdout);

  header(`Ship: metering ship --once per node into a local bucket directory (${path.relative(REPO, lay.bucket) || lay.bucket})`);
  await ship(lay, commands);

  header('Roll up: metering rollup (intervals, hourly rows, watermark)');
  await rollup(lay, commands);

  header(`Usage: metering usage for ${day}`);
  await usage(lay, commands, dayStart);

  header('Done');
  if (!fs.existsSync(lay.html)) throw new DemoError(`metering usage did not write ${lay.html}`);
  console.log(`  HTML report: ${bold(lay.html)}  ${dim(`(${Math.round(fs.statSync(lay.html).size / 1024)} KiB, self-contained; open it in a browser)`)}`);
  console.log(`  Ledgers:     ${path.join(lay.root, 'nodes', '<node>', 'ledger')}/`);
  console.log(`  Bucket:      ${lay.bucket}/`);
  console.log(`  Rollup:      ${lay.rollup}/`);
  console.log(dim(`  took ${((Date.now() - began) / 1000).toFixed(1)} s`));
}

try {
  await main();
} catch (err) {
  console.error(`\n${red('demo failed:')} ${err instanceof DemoError ? err.message : err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.exitCode = 1;
}
