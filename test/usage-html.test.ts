/**
 * `metering usage --html` in a real browser (playwright-core driving Debian's chromium): the page a
 * billing or capacity person opens, checked on what is rendered: one legend entry per group, the
 * total cell equal to `usage --json`, one bar per hour, axes with units and dates, the watermark
 * with final vs provisional explained, nothing loaded from elsewhere, no local paths. A screenshot
 * is kept in the test's temporary directory.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileRecorder, KINDS, REASONS } from 'metering-ledger';
import { spawnCli, waitExit } from './support/spawn.js';
import { tempDir } from './support/tmp.js';
import { haveTool } from './support/tools.js';

const CHROMIUM = '/usr/bin/chromium';
const hasChromium = haveTool(CHROMIUM, 'chromium');
const GiB = 1024 ** 3;
const DAY = Date.UTC(2026, 10, 20);
const at = (h: number, m = 0): Date => new Date(DAY + h * 3_600_000 + m * 60_000);
const NOW = '2026-11-20T06:30:00Z'; // watermark 06:25 (grace 5m): hours 00-05 final, 06-07 provisional
const RANGE = ['--from', '2026-11-20T00:00:00Z', '--to', '2026-11-20T08:00:00Z'];
const HOURS = 8;

interface UsageJson {
  lines: Array<{ key: string; kind: string | null }>;
  total: { cpu_ms: string; mem_byte_ms: string; storage_byte_ms: string };
}

/** n / d to 3 decimals, rounded half up: the table's own rule, computed here independently. */
const decimals3 = (n: bigint, d: bigint): string => {
  const q = (n * 1000n * 2n + d) / (2n * d);
  return `${q / 1000n}.${(q % 1000n).toString().padStart(3, '0')}`;
};

let root: string;
let cleanup: () => void;
let bucket: string;
let shots: string;
let browser: BrowserContext | undefined;

async function usage(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return waitExit(spawnCli(['usage', '--source', bucket, '--now', NOW, ...RANGE, ...args]));
}

beforeAll(async () => {
  ({ dir: root, cleanup } = tempDir('usage-html'));
  // Kept after the run (outside the cleaned-up data): look at it when the layout changes.
  shots = fs.mkdtempSync(path.join(os.tmpdir(), 'usage-html-screenshots-'));
  bucket = path.join(root, 'bucket');
  const nodes: Array<[string, (rec: FileRecorder) => void]> = [
    [
      'node-1',
      (rec) => {
        const shape = { cpu: 2, mem_bytes: 4 * GiB, storage_bytes: 20 * GiB };
        rec.emit({ kind: KINDS.VM_STORAGE_START, reason: REASONS.BOOT, vm_id: 'web-1', hypervisor: 'cloud-hypervisor', shape, emitted_at: at(0, 30) });
        rec.emit({ kind: KINDS.VM_COMPUTE_START, reason: REASONS.BOOT, vm_id: 'web-1', hypervisor: 'cloud-hypervisor', shape, emitted_at: at(0, 30) });
        rec.emit({ kind: KINDS.VM_COMPUTE_STOP, reason: REASONS.STOP_USER, vm_id: 'web-1', hypervisor: 'cloud-hypervisor', shape, emitted_at: at(5) });
      },
    ],
    [
      'node-2',
      (rec) => {
        const shape = { cpu: 4, mem_bytes: 8 * GiB, storage_bytes: 40 * GiB };
        rec.emit({ kind: KINDS.VM_STORAGE_START, reason: REASONS.BOOT, vm_id: 'db-1', hypervisor: 'firecracker', shape, emitted_at: at(2) });
        rec.emit({ kind: KINDS.VM_COMPUTE_START, reason: REASONS.BOOT, vm_id: 'db-1', hypervisor: 'firecracker', shape, emitted_at: at(2) });
        const snap = { cpu: 0, mem_bytes: 0, storage_bytes: 10 * GiB };
        rec.emit({ kind: KINDS.SNAP_STORAGE_START, reason: REASONS.CLONE, snapshot_id: 'db-1-nightly', vm_id: 'db-1', shape: snap, emitted_at: at(3) });
        rec.emit({ kind: KINDS.SNAP_STORAGE_STOP, reason: REASONS.SNAP_RM, snapshot_id: 'db-1-nightly', vm_id: 'db-1', shape: snap, emitted_at: at(4, 30) });
      },
    ],
  ];
  for (const [node, write] of nodes) {
    const ledger = path.join(root, node);
    const rec = new FileRecorder({ dir: ledger, node, now: () => at(0) });
    write(rec);
    rec.close();
    const shipped = await waitExit(spawnCli(['ship', '--once', '--ledger-dir', ledger, '--dest', bucket, '--node', node, '--no-progress-bar']));
    expect(shipped.code, shipped.stderr).toBe(0);
  }
  if (hasChromium) {
    // A fresh profile per run (playwright passes it as --user-data-dir).
    browser = await chromium.launchPersistentContext(path.join(root, 'chromium-profile'), {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1100, height: 900 },
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  }
}, 120_000);

afterAll(async () => {
  await browser?.close();
  cleanup();
});

/** Opens the report; every request that is not the file itself is recorded and refused. */
async function open(file: string): Promise<{ page: Page; foreign: string[]; errors: string[] }> {
  const page = await browser!.newPage();
  const foreign: string[] = [];
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  await page.route('**/*', (route) => {
    const url = route.request().url();
    if (url === `file://${file}`) return route.continue();
    foreign.push(url);
    return route.abort();
  });
  await page.goto(`file://${file}`);
  return { page, foreign, errors };
}

describe.skipIf(!hasChromium)('metering usage --html in chromium', () => {
  for (const by of ['node', 'resource'] as const) {
    it(`--by ${by}: legend = groups, total = usage --json, one bar per hour, units, dates, watermark`, async () => {
      const json = await usage(['--by', by, '--json']);
      expect(json.code, json.stderr).toBe(0);
      const table = JSON.parse(json.stdout) as UsageJson;
      const html = path.join(root, `usage-by-${by}.html`);
      const res = await usage(['--by', by, '--html', html]);
      expect(res.code, res.stderr).toBe(0);
      const { page, foreign, errors } = await open(html);
      try {
        // One legend entry per group of the table, in the table's order.
        const legend = await page.locator('ul.legend li').allTextContents();
        expect(legend.map((s) => s.trim())).toEqual(table.lines.map((l) => l.key));
        expect(legend.length).toBeGreaterThanOrEqual(2);

        // The total cells are the exact --json totals, shown to 3 decimals.
        const HOUR = 3_600_000n;
        const GIB = BigInt(GiB);
        const cells = page.locator('tfoot tr.total td[data-metric]');
        expect(await cells.allTextContents()).toEqual([
          decimals3(BigInt(table.total.cpu_ms), HOUR),
          decimals3(BigInt(table.total.mem_byte_ms), GIB * HOUR),
          decimals3(BigInt(table.total.storage_byte_ms), GIB * HOUR),
        ]);
        expect(await cells.first().getAttribute('data-exact')).toBe(table.total.cpu_ms);

        // Three charts, each one bar per hour of the range; bars stacked by group.
        const charts = page.locator('figure.chart');
        expect(await charts.count()).toBe(3);
        for (const metric of ['cpu', 'memory', 'storage']) {
          const chart = page.locator(`figure.chart[data-metric="${metric}"]`);
          expect(await chart.locator('g.bar').count()).toBe(HOURS);
          expect(await chart.locator('svg rect').count()).toBe(HOURS); // one rect per hour; segments are paths
          expect(await chart.locator('line.grid').count()).toBeGreaterThanOrEqual(3);
          expect(await chart.locator('line.watermark').count()).toBe(1);
          const groupsDrawn = new Set(await chart.locator('path.seg').evaluateAll((els) => els.map((e) => e.getAttribute('data-group'))));
          for (const g of groupsDrawn) expect(legend).toContain(g);
        }
        const cpu = page.locator('figure.chart[data-metric="cpu"]');
        // 03:00-04:00 both VMs run: two segments stacked in one bar (2 + 4 vCPUs = 6).
        expect(await cpu.locator('g.bar[data-hour="2026-11-20T03:00:00.000Z"] path.seg').count()).toBe(2);
        expect(await cpu.locator('text.ytick').allTextContents()).toContain('6 vCPUs');
        expect(await page.locator('figure.chart[data-metric="memory"] text.ytick').evaluateAll((els) => els.some((e) => / GiB$/.test(e.textContent ?? '')))).toBe(true);
        expect(await cpu.locator('figcaption').textContent()).toBe('Average vCPUs in use, per hour');

        // Hour labels with dates; hours after the watermark are provisional, and the page says what that means.
        expect(await cpu.locator('text.xdate').allTextContents()).toEqual(['20 Nov']);
        expect((await cpu.locator('text.xlabel').allTextContents()).length).toBeGreaterThanOrEqual(4);
        expect(await cpu.locator('g.bar.provisional').count()).toBe(2);
        expect(await cpu.locator('text.watermark-label').textContent()).toContain('watermark 20 Nov 2026 06:25 UTC');
        const key = (await page.locator('p.key').textContent()) ?? '';
        expect(key).toMatch(/final/);
        expect(key).toMatch(/provisional/);

        // Human times, no local paths, nothing from elsewhere, no script errors.
        const text = await page.locator('body').innerText();
        expect(text).toContain('20 Nov 2026 00:00 UTC to 20 Nov 2026 08:00 UTC');
        const source = await page.content();
        expect(source).not.toMatch(/\d{2}:\d{2}:\d{2}\.\d{3}Z</);
        expect(text).not.toMatch(/T\d{2}:\d{2}:\d{2}/);
        expect(source).not.toContain(root);
        expect(source).not.toContain(os.tmpdir() + '/');
        expect(foreign).toEqual([]);
        expect(errors).toEqual([]);

        const shot = path.join(shots, `usage-by-${by}.png`);
        await page.screenshot({ path: shot, fullPage: true });
        expect(fs.statSync(shot).size).toBeGreaterThan(10_000);
        console.log(`screenshot: ${shot}`);
      } finally {
        await page.close();
      }
    });
  }
});
