import { Command } from 'commander';
import { resolveLedgerDir } from '../../src/index.js';
import { readShipperStatus, type ShipperStatusReport } from '../shipper/status.js';
import { errorExit, requireDirectory } from './cli-error.js';

function age(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return 'never';
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  const text = s < 120 ? `${s}s` : s < 7200 ? `${Math.round(s / 60)}m` : s < 172_800 ? `${(s / 3600).toFixed(1)}h` : `${(s / 86400).toFixed(1)}d`;
  return `${iso} (${text} ago)`;
}

function human(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

export function formatStatus(r: ShipperStatusReport): string {
  const rep = r.reported;
  const lines = [
    `ledger dir:       ${r.ledger_dir}`,
    `shipper:          ${r.running ? `running${r.pid ? ` (pid ${r.pid})` : ''}` : 'not running'}`,
    `destination:      ${rep?.destination ?? 'unknown (no report yet)'}`,
    `backlog:          ${human(r.backlog_bytes)} (${r.backlog_bytes} bytes) in ${r.segments.filter((s) => s.shipped < s.size).length} of ${r.segments.length} segments`,
    `oldest unshipped: ${r.oldest_unshipped_at ? age(r.oldest_unshipped_at) : r.backlog_bytes === 0 ? 'none' : 'unknown'}`,
    `last success:     ${age(rep?.last_success_at)}`,
    `last error:       ${rep?.last_error ? `${age(rep.last_error.at)}: ${rep.last_error.message}${rep.last_error.hint ? ` — ${rep.last_error.hint}` : ''}` : 'none'}`,
    `last report:      ${age(rep?.updated_at)}`,
  ];
  if (rep) lines.push(`shipped:          ${rep.counters.ledger_lines} lines, ${rep.counters.quarantined_lines} quarantined, ${rep.counters.objects_uploaded} objects (since ${rep.started_at})`);
  for (const s of r.skipped) lines.push(`not shipped:      ${s.name}: ${s.reason}`);
  const plain = r.segments.find((s) => s.plain);
  if (plain) lines.push(`plain ledger:     ledger.jsonl is a plain file, shipped as ${plain.name === 'ledger.jsonl' ? '(a name is reserved when a shipper first sees it)' : plain.name}`);
  if (r.problem) lines.push(`problem:          ${r.problem}`);
  return lines.join('\n') + '\n';
}

export function registerStatus(program: Command): void {
  program
    .command('status')
    .description("Show a ledger directory's shipping status: backlog bytes, oldest unshipped entry, last success, last error.")
    .option('--ledger-dir <dir>', 'ledger directory (default: $METERING_DIR/metering or /var/lib/metering-ledger/metering)')
    .option('--state-dir <dir>', 'the shipper state directory, if ship ran with --state-dir (default: <ledger-dir>/.shipper)')
    .option('--json', 'print JSON instead of text')
    .action(async (flags: { ledgerDir?: string; stateDir?: string; json?: boolean }) => {
      const dir = resolveLedgerDir(flags.ledgerDir ? { dir: flags.ledgerDir } : {});
      try {
        requireDirectory('--ledger-dir', flags.ledgerDir ?? dir, dir, { mustExist: false, hint: 'the ledger directory is where the recorder writes ledger.jsonl' });
        if (flags.stateDir) requireDirectory('--state-dir', flags.stateDir, flags.stateDir, { mustExist: false, hint: 'the directory ship --state-dir was given' });
        const report = await readShipperStatus(dir, flags.stateDir);
        process.stdout.write(flags.json ? JSON.stringify(report, null, 2) + '\n' : formatStatus(report));
      } catch (err) {
        process.exitCode = errorExit('status', err);
      }
    });
}
