/**
 * Consumer benchmark (issue 11), side by side in one run on one machine, every consumer in its own
 * measured process:
 *
 *   one run (A)  `metering rollup` (the compiled CLI, --memory-limit) over a bucket it has never
 *                seen, at 1/10, 3/10 and all of --entries, beside the DuckDB twin SQL alone (the
 *                same engine and rules with DuckDB's JSON reader instead of the TypeScript parser,
 *                same memory limit; bench/support/duckdb-json-loader.ts) and the reference
 *                TypeScript model (runRollup) for the sizes it survives.
 *   daily (B)    --days daily increments of the same fleet, one `metering rollup` per day on one state.
 *   huge (C)     opt-in (--huge, or --entries >= 100000000): one run of the CLI alone at that size;
 *                entries/s, peak RSS, and the disk DuckDB spilled.
 *
 * The fleet: --nodes nodes × --vms VMs starting, stopping, reporting baselines, snapshotting
 * (oldest snapshots deleted), written by the real recorder at the rate of --entries per --span-days
 * and cut into objects as the shipper cuts them. The daily part replays the same fleet over --days.
 *
 *   npm run bench -- consumer [--entries 10000000] [--span-days 14] [--days 30] [--nodes 10] [--vms 1000]
 *       [--memory-limit 1GiB] [--chunk-bytes SIZE] [--rollup-limit-s 600] [--fractions 0.1,0.3,1] [--only one-run|daily]
 *       [--huge] [--profile-dir DIR] [--statement-log DIR] [--keep] [--no-reference]
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { parseByteSize } from '../sink/duration.js';
import { buildCli } from './support/build.js';
import { REPO, runMeasured } from './support/child.js';
import { DAY_MS, fleetEntries, landObjects, makeFleet, writeProgress } from './support/consumer-fleet.js';
import { runDaily } from './support/consumer-daily.js';
import { runOneRun } from './support/consumer-one-run.js';
import { cliHasMemoryLimit, TWIN_SCRIPT } from './support/consumer-runs.js';
import { int, machineLine, secs, targetLines, type Target } from './support/report.js';

const HUGE_ENTRIES = 100_000_000;
const BYTES_PER_ENTRY = 310; // this fleet's average line

const { values } = parseArgs({
  options: {
    entries: { type: 'string' },
    nodes: { type: 'string', default: '10' },
    vms: { type: 'string', default: '1000' },
    'span-days': { type: 'string', default: '14' },
    days: { type: 'string', default: '30' },
    'memory-limit': { type: 'string', default: '1GiB' },
    'chunk-bytes': { type: 'string' },
    'rollup-limit-s': { type: 'string' },
    fractions: { type: 'string', default: '0.1,0.3,1' },
    only: { type: 'string' },
    huge: { type: 'boolean', default: false },
    'profile-dir': { type: 'string' },
    'statement-log': { type: 'string' },
    keep: { type: 'boolean', default: false },
    'no-reference': { type: 'boolean', default: false },
  },
  strict: false,
  allowPositionals: true,
});
const str = (k: keyof typeof values): string | undefined => (typeof values[k] === 'string' ? (values[k] as string) : undefined);
function positiveInt(name: string, text: string | undefined, min = 1): number {
  const n = Number(text);
  if (!(Number.isInteger(n) && n >= min)) throw new Error(`--${name} must be an integer >= ${min}, got ${JSON.stringify(text)}`);
  return n;
}
const HUGE = values.huge === true || Number(str('entries') ?? 0) >= HUGE_ENTRIES;
const ENTRIES = positiveInt('entries', str('entries') ?? String(HUGE ? HUGE_ENTRIES : 10_000_000), 1000);
const NODES = positiveInt('nodes', str('nodes'));
const VMS = positiveInt('vms', str('vms'));
const DAYS = positiveInt('days', str('days'));
const SPAN_MS = Number(str('span-days')) * DAY_MS;
if (!(SPAN_MS > 0)) throw new Error('--span-days must be a positive number');
const MEMORY_LIMIT = str('memory-limit')!;
if (!/^\d+(\.\d+)?\s*[KMGT]i?B$/i.test(MEMORY_LIMIT)) throw new Error(`--memory-limit must look like 1GiB or 512MB, got ${JSON.stringify(MEMORY_LIMIT)}`);
/** One run's `metering rollup --chunk-bytes` (A, C); the CLI's default when not given. */
const CHUNK_BYTES = str('chunk-bytes');
// Checked by the CLI's own parser before a fleet is written, not at the first rollup.
if (CHUNK_BYTES !== undefined) {
  try {
    parseByteSize(CHUNK_BYTES);
  } catch (err) {
    throw new Error(`--chunk-bytes: ${(err as Error).message}`);
  }
}
/** A run still going after this is killed and reported as "did not finish": the suite must end. */
const LIMIT_MS = positiveInt('rollup-limit-s', str('rollup-limit-s') ?? (HUGE ? '7200' : '600')) * 1000;
const FRACTIONS = (str('fractions') ?? '').split(',').map(Number);
if (!FRACTIONS.length || FRACTIONS.some((f) => !(f > 0 && f <= 1))) throw new Error('--fractions must be a comma-separated list of numbers in (0, 1], e.g. 0.1,0.3,1');
FRACTIONS.sort((a, b) => a - b);
const ONLY = str('only');
if (ONLY !== undefined && ONLY !== 'one-run' && ONLY !== 'daily') throw new Error(`--only must be one-run or daily, got ${JSON.stringify(ONLY)}`);
const PROFILE_DIR = str('profile-dir') ? path.resolve(str('profile-dir')!) : undefined;
const STATEMENT_LOG_DIR = str('statement-log') ? path.resolve(str('statement-log')!) : undefined;
if (STATEMENT_LOG_DIR) fs.mkdirSync(STATEMENT_LOG_DIR, { recursive: true });
const ONE_RUN = HUGE || ONLY !== 'daily';
const DAILY = !HUGE && ONLY !== 'one-run';

const START_MS = Date.UTC(2026, 10, 1);
const perNodeA = Math.ceil(ENTRIES / NODES);
const STEP_MS = Math.max(1, Math.floor(SPAN_MS / perNodeA));
const perNodeDay = DAY_MS / STEP_MS;
// The daily part needs the fleet through its last day, plus the object that completes it.
const perNode = Math.max(ONE_RUN ? perNodeA : 0, DAILY ? Math.ceil(perNodeDay * (DAYS + 0.5)) : 0);
// The shipper's default 8 MiB objects; smaller when scaled down, so the 1/10 set still has several
// objects per node and every day brings at least two per node.
const BATCH_BYTES = Math.round(Math.min(8 * 1024 * 1024, Math.max(64 * 1024, Math.min(ONE_RUN ? (perNodeA * BYTES_PER_ENTRY) / 30 : Infinity, DAILY ? (perNodeDay * BYTES_PER_ENTRY) / 2 : Infinity))));

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-consumer-'));
const commit = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO, encoding: 'utf8' }).stdout.trim() || '?';

/** The JSON loader against the TypeScript loader on the fleet's first objects: the twin's numbers are only worth printing if it loads the same rows. */
async function selfCheck(full: string, fleet: Map<string, { name: string; entries: number; lastMs: number }[]>): Promise<Target> {
  const dir = path.join(work, 'bucket-check');
  const first = [...fleet.values()].slice(0, 2).flatMap((objects) => objects.slice(0, 2));
  landObjects(full, dir, first);
  writeProgress(dir, new Map(), START_MS);
  try {
    const r = await runMeasured(['bench/support/check-json-loader.ts', '--bucket', dir], { typescript: true });
    console.log(r.stdout.trim());
    return { what: 'twin SQL alone loads the rows loadNewObjects loads', value: 1, shown: 'yes', target: 'identical', met: true };
  } catch (err) {
    console.log((err as Error).message);
    return { what: 'twin SQL alone loads the rows loadNewObjects loads', value: 0, shown: 'no', target: 'identical', met: false };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

try {
  const cli = buildCli(work, [TWIN_SCRIPT]);
  const cliMemoryLimit = cliHasMemoryLimit(cli);
  const full = path.join(work, 'bucket');
  const t = performance.now();
  const fleet = await makeFleet(full, { nodes: NODES, vms: VMS, entriesPerNode: perNode, stepMs: STEP_MS, startMs: START_MS, batchBytes: BATCH_BYTES });
  const objects = [...fleet.values()].reduce((s, o) => s + o.length, 0);
  console.log(`fleet: ${NODES} nodes × ${VMS} VMs, ${int(fleetEntries(fleet))} entries over ${((perNode * STEP_MS) / DAY_MS).toFixed(1)} days in ${objects} objects, written by the recorder in ${secs(performance.now() - t)} s`);
  console.log(`commit ${commit}; ${cli.note}; twin: ${cli.script(TWIN_SCRIPT) ? 'compiled into the same build' : 'through tsx'}; ${machineLine()}`);
  console.log(`memory limit ${MEMORY_LIMIT} for the twin${cliMemoryLimit ? ' and for `metering rollup --memory-limit`' : '; this `metering rollup` has no --memory-limit flag (the TypeScript consumer): run without it'}; time limit per run ${LIMIT_MS / 1000} s; one run's --chunk-bytes ${CHUNK_BYTES ?? 'the CLI default'}`);

  const targets: Target[] = [];
  if (ONE_RUN && !HUGE) targets.push(await selfCheck(full, fleet));
  if (ONE_RUN) {
    targets.push(
      ...(await runOneRun({
        work,
        full,
        fleet,
        cli,
        cliMemoryLimit,
        memoryLimit: MEMORY_LIMIT,
        chunkBytes: CHUNK_BYTES,
        perNode: perNodeA,
        fractions: HUGE ? [1] : FRACTIONS,
        rollupOnly: HUGE,
        reference: values['no-reference'] !== true,
        limitMs: LIMIT_MS,
        profileDir: PROFILE_DIR,
        statementLogDir: STATEMENT_LOG_DIR,
        keep: values.keep === true,
        title: HUGE ? `One run of \`metering rollup\` at ${int(ENTRIES)} entries (C)` : 'One run (A): `metering rollup` vs the twin SQL alone vs the reference model, same objects',
      })),
    );
  }
  if (DAILY) {
    targets.push(...(await runDaily({ work, full, fleet, cli, cliMemoryLimit, memoryLimit: MEMORY_LIMIT, days: DAYS, startMs: START_MS, limitMs: LIMIT_MS, profileDir: PROFILE_DIR, statementLogDir: STATEMENT_LOG_DIR, keep: values.keep === true })));
  }
  console.log('\n' + targetLines(targets));
  if (PROFILE_DIR) console.log(`\nCPU profiles: ${PROFILE_DIR} (summarise: node --import tsx bench/support/cpuprofile-summary.ts ${PROFILE_DIR}/*.cpuprofile)`);
} finally {
  if (values.keep) console.log(`kept ${work}`);
  else fs.rmSync(work, { recursive: true, force: true });
}
