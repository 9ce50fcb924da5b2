/**
 * Operating it: the shipper's live /metrics (prom-client defaults, build info, upload latency,
 * errors by reason, no `node` label) against the GCS test server with injected failures; the
 * textfile-collector files of `rollup` and `ship --once`; the example alert rules checked with
 * promtool, and every metric name they and the Grafana dashboard use found in real output.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileRecorder, KINDS, REASONS } from 'metering-ledger';
import { cliError } from './support/cli-error.js';
import { startGcsServer, type GcsTestServer } from './support/gcs-server.js';
import { REPO_ROOT, spawnCli, waitExit } from './support/spawn.js';
import { tempDir } from './support/tmp.js';
import { haveTool } from './support/tools.js';
import { pollUntil } from './support/until.js';

const PROMTOOL = '/usr/bin/promtool';
const hasPromtool = haveTool(PROMTOOL, 'prometheus');
const RULES = path.join(REPO_ROOT, 'examples', 'prometheus', 'metering-alerts.yml');
const DASHBOARD = path.join(REPO_ROOT, 'examples', 'grafana', 'metering-shipper-dashboard.json');
const VERSION = (JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;

function promtool(args: string[], stdin?: string): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    const child = execFile(PROMTOOL, args, (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: stdout + stderr }));
    if (stdin !== undefined) child.stdin!.end(stdin);
  });
}

/** Lint problems promtool finds in an exposition, except those of prom-client's own nodejs_* defaults. */
async function lintProblems(text: string): Promise<string[]> {
  const r = await promtool(['check', 'metrics'], text);
  return r.out.split('\n').filter((l) => l.trim() && !l.startsWith('nodejs_'));
}

/** Metric names (series families) in an exposition. */
function exposedNames(text: string): Set<string> {
  const names = new Set<string>();
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{|\s)/.exec(line);
    if (m) names.add(m[1]!);
  }
  return names;
}

/** Metric names a PromQL expression uses (identifiers followed by a selector, range or operator, not functions or labels). */
function namesIn(expr: string): string[] {
  const withoutStrings = expr.replace(/"[^"]*"/g, '""');
  return [...withoutStrings.matchAll(/\b((?:metering|process|nodejs)_[a-zA-Z0-9_]+)\b/g)].map((m) => m[1]!);
}

function ruleExprs(group: string): string[] {
  const text = fs.readFileSync(RULES, 'utf8');
  const section = text.split(/^ {2}- name: /m).find((s) => s.startsWith(group))!;
  return [...section.matchAll(/^\s+expr: (.+)$/gm)].map((m) => m[1]!);
}

let root: string;
let cleanup: () => void;
let server: GcsTestServer;
beforeAll(async () => {
  ({ dir: root, cleanup } = tempDir('metrics'));
  server = await startGcsServer({ buckets: ['ledgers'] });
});
afterAll(async () => {
  await server?.stop();
  cleanup();
});

function writeLedger(dir: string, count: number): void {
  const rec = new FileRecorder({ dir, node: 'node-m' });
  const shape = { cpu: 1, mem_bytes: 1024 ** 3, storage_bytes: 0 };
  for (let i = 0; i < count; i++) {
    rec.emit({ kind: KINDS.VM_COMPUTE_START, reason: REASONS.BOOT, vm_id: `vm-${i}`, shape, emitted_at: new Date(Date.UTC(2026, 10, 20, 1, i)) });
  }
  rec.close();
}

describe('metering ship --metrics-port (live scrape)', () => {
  let scrape: string;

  beforeAll(async () => {
    const ledger = path.join(root, 'ledger-live');
    writeLedger(ledger, 50);
    // The first two uploads answer 503: counted with reason "server", then retried.
    const fault = server.failNext(2, 503, { op: 'upload', bucket: 'ledgers' });
    const shipper = spawnCli(['ship', '--ledger-dir', ledger, '--dest', 'gs://ledgers/live', '--endpoint', server.url, '--node', 'node-m', '--metrics-port', '0', '--metrics-host', '127.0.0.1', '--retry-base-ms', '10', '--retry-cap-ms', '50', '--batch-ms', '20']);
    let stderr = '';
    shipper.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = waitExit(shipper);
    try {
      const url = await pollUntil('the metrics endpoint', () => /"url":"(http:\/\/127\.0\.0\.1:\d+\/metrics)"/.exec(stderr)?.[1], 30_000, 50);
      scrape = await pollUntil(
        'all 50 lines shipped',
        async () => {
          const text = await (await fetch(url)).text();
          return /^metering_shipper_ledger_lines_total 50$/m.test(text) ? text : undefined;
        },
        45_000,
        100,
      );
      expect(fault.hits).toBe(2);
    } finally {
      shipper.kill('SIGTERM');
      await exited;
    }
  }, 90_000);

  it('has the process and Node.js defaults, build info and no node label', () => {
    for (const name of ['process_cpu_user_seconds_total', 'process_resident_memory_bytes', 'process_start_time_seconds', 'nodejs_heap_size_used_bytes', 'nodejs_eventloop_lag_seconds']) {
      expect(scrape).toMatch(new RegExp(`^${name}(\\{[^}]*\\})? `, 'm'));
    }
    expect(scrape).toContain(`metering_build_info{version="${VERSION}",nodejs="${process.version}"} 1`);
    const ours = scrape.split('\n').filter((l) => l.startsWith('metering_'));
    expect(ours.length).toBeGreaterThan(10);
    expect(ours.filter((l) => /[{,]node="/.test(l))).toEqual([]);
  });

  it('times uploads in a histogram and counts the injected 503s with reason="server"', () => {
    const created = /^metering_shipper_upload_duration_seconds_count\{result="created"\} (\d+)$/m.exec(scrape);
    expect(Number(created?.[1])).toBeGreaterThanOrEqual(1);
    expect(scrape).toMatch(/^metering_shipper_upload_duration_seconds_bucket\{le="0\.1",result="created"\} \d+$/m);
    // The two 503s hit ledger uploads or progress puts, whichever came first: counted once each.
    const server503 = [...scrape.matchAll(/^metering_shipper_upload_errors_total\{operation="(\w+)",reason="server"\} (\d+)$/gm)].reduce((n, m) => n + Number(m[2]), 0);
    expect(server503).toBe(2);
    const uploadErrors = Number(/^metering_shipper_upload_errors_total\{operation="upload",reason="server"\} (\d+)$/m.exec(scrape)?.[1]);
    expect(Number(/^metering_shipper_upload_duration_seconds_count\{result="error"\} (\d+)$/m.exec(scrape)?.[1] ?? 0)).toBe(uploadErrors);
    expect(scrape).toMatch(/^metering_shipper_upload_errors_total\{operation="upload",reason="permanent"\} 0$/m);
    expect(Number(/^metering_shipper_last_success_timestamp_seconds (\S+)$/m.exec(scrape)?.[1])).toBeGreaterThan(Date.now() / 1000 - 600);
  });

  it.skipIf(!hasPromtool)('is a valid exposition (promtool check metrics; lint-clean apart from prom-client defaults)', async () => {
    expect(await lintProblems(scrape)).toEqual([]);
  });

  it.skipIf(!hasPromtool)('the alert rules pass promtool check rules', async () => {
    const r = await promtool(['check', 'rules', RULES]);
    expect(r.code, r.out).toBe(0);
    expect(r.out).toMatch(/SUCCESS: \d+ rules found/);
  });

  it('every metric the shipper alert rules and the Grafana dashboard use is in the scrape', () => {
    const names = exposedNames(scrape);
    const shipperRules = ruleExprs('metering-shipper').flatMap(namesIn);
    expect(shipperRules.length).toBeGreaterThan(3);
    expect(shipperRules.filter((n) => !names.has(n))).toEqual([]);
    const dashboard = JSON.parse(fs.readFileSync(DASHBOARD, 'utf8')) as { panels: Array<{ title: string; targets: Array<{ expr: string }> }>; templating: { list: Array<{ query: string }> } };
    const used = [...dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr)), ...dashboard.templating.list.map((v) => v.query)].flatMap(namesIn);
    expect(used.length).toBeGreaterThan(8);
    expect(used.filter((n) => !names.has(n))).toEqual([]);
  });
});

describe('--metrics-file (textfile collector) for the batch commands', () => {
  let bucket: string;
  beforeAll(async () => {
    const ledger = path.join(root, 'ledger-batch');
    bucket = path.join(root, 'bucket-batch');
    writeLedger(ledger, 20);
    const prom = path.join(root, 'ship.prom');
    const shipped = await waitExit(spawnCli(['ship', '--once', '--ledger-dir', ledger, '--dest', bucket, '--node', 'node-m', '--metrics-file', prom]));
    expect(shipped.code, shipped.stderr).toBe(0);
  });

  it('ship --once writes last success, entries read, lag, objects failed and backlog', async () => {
    const text = fs.readFileSync(path.join(root, 'ship.prom'), 'utf8');
    expect(text).toMatch(/^metering_shipper_entries_read 20$/m);
    expect(text).toMatch(/^metering_shipper_watermark_lag_seconds 0$/m);
    expect(text).toMatch(/^metering_shipper_objects_failed 0$/m);
    expect(text).toMatch(/^metering_shipper_backlog_bytes 0$/m);
    expect(text).toMatch(/^metering_shipper_failed_calls 0$/m);
    expect(text).toMatch(/^metering_shipper_last_run_success 1$/m);
    expect(Number(/^metering_shipper_last_success_timestamp_seconds (\S+)$/m.exec(text)?.[1])).toBeGreaterThan(Date.now() / 1000 - 600);
    expect(text).not.toMatch(/^process_|^nodejs_/m); // a cron job's process figures mean nothing
    if (hasPromtool) expect(await lintProblems(text)).toEqual([]);
  });

  it('rollup writes last success, entries read, watermark lag and objects failed; a failed run keeps the last success', async () => {
    const prom = path.join(root, 'rollup.prom');
    const out = path.join(root, 'out-batch');
    const r = await waitExit(spawnCli(['rollup', '--source', bucket, '--out', out, '--now', '2026-11-21T00:00:00Z', '--metrics-file', prom]));
    expect(r.code, r.stderr).toBe(0);
    const text = fs.readFileSync(prom, 'utf8');
    expect(text).toMatch(/^metering_rollup_entries_read 20$/m);
    expect(text).toMatch(/^metering_rollup_objects_failed 0$/m);
    expect(text).toMatch(/^metering_rollup_last_run_success 1$/m);
    const lag = Number(/^metering_rollup_watermark_lag_seconds (\S+)$/m.exec(text)?.[1]);
    expect(lag).toBeGreaterThanOrEqual(300); // at least --grace behind --now
    const success = /^metering_rollup_last_success_timestamp_seconds (\S+)$/m.exec(text)?.[1];
    expect(Number(success)).toBeGreaterThan(Date.now() / 1000 - 600);
    if (hasPromtool) expect(await lintProblems(text)).toEqual([]);
    const names = exposedNames(text);
    const rollupRules = ruleExprs('metering-rollup').flatMap(namesIn);
    expect(rollupRules.length).toBeGreaterThanOrEqual(3);
    expect(rollupRules.filter((n) => !names.has(n))).toEqual([]);

  });

  it('a failed run keeps the last success time and says it failed', async () => {
    const prom = path.join(root, 'rollup-fail.prom');
    const out = path.join(root, 'out-fail');
    expect((await waitExit(spawnCli(['rollup', '--source', bucket, '--out', out, '--now', '2026-11-21T00:00:00Z', '--metrics-file', prom]))).code).toBe(0);
    const before = /^metering_rollup_last_success_timestamp_seconds (\S+)$/m.exec(fs.readFileSync(prom, 'utf8'))?.[1];
    // The engine's state database, overwritten with something that is not one: fail closed.
    fs.writeFileSync(path.join(out, 'state.duckdb'), '{"not": "a state"\n');
    const r = await waitExit(spawnCli(['rollup', '--source', bucket, '--out', out, '--now', '2026-11-21T00:00:00Z', '--metrics-file', prom]));
    expect(r.code).toBe(2);
    const text = fs.readFileSync(prom, 'utf8');
    expect(text).toMatch(/^metering_rollup_last_run_success 0$/m);
    expect(/^metering_rollup_last_success_timestamp_seconds (\S+)$/m.exec(text)?.[1]).toBe(before);
  });

  it('refuses a file node_exporter would not read, and --metrics-file without --once', async () => {
    const notProm = await waitExit(spawnCli(['rollup', '--source', bucket, '--out', path.join(root, 'o3'), '--metrics-file', path.join(root, 'x.txt')]));
    expect(notProm.code).toBe(2);
    expect(cliError(notProm.stderr).msg).toMatch(/does not end in \.prom/);
    expect(fs.existsSync(path.join(root, 'o3'))).toBe(false);
    const daemon = await waitExit(spawnCli(['ship', '--ledger-dir', path.join(root, 'ledger-batch'), '--dest', bucket, '--metrics-file', path.join(root, 'd.prom')]));
    expect(daemon.code).toBe(2);
    expect(cliError(daemon.stderr).msg).toMatch(/--metrics-file is for `ship --once`/);
  });
});
