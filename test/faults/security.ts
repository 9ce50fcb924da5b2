/**
 * Security basics, end to end with real processes:
 * - modes: after writers, a shipper and a consumer ran (under the usual umask 022), no ledger
 *   segment, shipper state file, bucket object or consumer state/output file is readable by group
 *   or others, and their directories are 0700.
 * - names: node ids and prefixes cannot escape the bucket prefix: `--node ../x`, `a/b`, `..`, ``,
 *   `.x`, `--dest gs://b/../x` are refused by the CLI with a clear error and create nothing; NUL is
 *   refused by the library (argv cannot carry it); resource ids full of `../` and slashes stay
 *   content and never shape an object name.
 * - logs: a shipper and a consumer facing a GCS server that answers 403 to everything, with a fake
 *   service-account key in GOOGLE_APPLICATION_CREDENTIALS, log the 403 but never the key, and
 *   neither they nor a consumer reading malformed lines log entry contents (vm ids, line bytes).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FileRecorder, KINDS, openRecorder, REASONS } from 'metering-ledger';
import { LocalDirDestination, objectName, parseObjectName, shipOnce } from 'metering-ledger/sink';
import { startGcsServer } from '../support/gcs-server.js';
import { spawnCli, waitExit } from '../support/spawn.js';
import { drainOnce, removeRoot, runConsumer, sleep, startShipperProcess, tempRoot, waitForStderr, type FaultResult } from './support.js';

export interface SecurityParams {
  entries: number;
  /** Try every bad node id and prefix through the CLI (each is a process), or a few. */
  allNames: boolean;
}

const SECRET_KEY = 'MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC-FAKE-SECRET-KEY-MATERIAL';
const SECRET_VM = 'vm-CONFIDENTIAL-customer-4242';
const SECRET_LINE = 'garbage-line-SECRET-PAYLOAD-77';

/** Files (and directories) under `dir` that group or others may read. */
function readableByOthers(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      const st = fs.lstatSync(p);
      if (st.isSymbolicLink()) continue;
      // Lock directories are empty markers; only what holds data matters.
      if (e.isDirectory() && e.name.endsWith('.lock')) continue;
      if ((st.mode & 0o044) !== 0) out.push(`${path.relative(dir, p) || '.'} ${(st.mode & 0o777).toString(8)}`);
      if (e.isDirectory()) walk(p);
    }
  };
  if ((fs.statSync(dir).mode & 0o044) !== 0) out.push(`. ${(fs.statSync(dir).mode & 0o777).toString(8)}`);
  walk(dir);
  return out;
}

export async function run(p: SecurityParams): Promise<FaultResult> {
  const root = tempRoot('security');
  const violations: string[] = [];
  const notes: string[] = [];
  let checks = 0;
  const claim = (ok: boolean, what: string): void => {
    checks++;
    if (!ok) violations.push(what);
  };
  const ledger = path.join(root, 'ledger');
  const bucket = path.join(root, 'bucket');
  const out = path.join(root, 'out');
  try {
    // --- a pipeline run with nasty resource ids and one malformed line ---
    const rec = new FileRecorder({ dir: ledger, node: 'node-a' });
    const nasty = ['../../etc/passwd', 'a/b/c', '..', 'x\\y', SECRET_VM];
    for (let i = 0; i < p.entries; i++) {
      rec.emit({ kind: i % 2 ? KINDS.VM_COMPUTE_STOP : KINDS.VM_COMPUTE_START, reason: i % 2 ? REASONS.STOP_USER : REASONS.BOOT, vm_id: nasty[Math.floor(i / 2) % nasty.length]!, shape: { cpu: 1, mem_bytes: 1, storage_bytes: 1 } });
    }
    fs.appendFileSync(path.join(ledger, 'ledger.jsonl'), `${SECRET_LINE}\n`);
    await rec.close();
    const shipped = await drainOnce(ledger, bucket);
    claim(shipped.code === 0, `ship --once exited ${shipped.code}`);
    claim(!shipped.stderr.includes(SECRET_VM) && !shipped.stderr.includes(SECRET_LINE), 'the shipper logged entry contents (a vm id or a malformed line)');
    const consumed = await runConsumer(bucket, out);
    claim(consumed.exit.code === 0, `rollup exited ${consumed.exit.code}: ${consumed.exit.stderr.slice(0, 200)}`);
    claim(!consumed.exit.stderr.includes(SECRET_VM) && !consumed.exit.stderr.includes(SECRET_LINE), 'the consumer logged entry contents');
    claim(!fs.readFileSync(path.join(out, 'report.json'), 'utf8').includes(SECRET_LINE), 'report.json holds the bytes of a malformed line');

    // --- modes ---
    for (const [what, dir] of [['ledger directory', ledger], ['bucket directory', bucket], ['consumer --out', out]] as const) {
      const open = readableByOthers(dir);
      claim(open.length === 0, `${what}: readable by group/others: ${open.slice(0, 6).join(', ')}`);
    }
    notes.push(`modes checked under umask ${process.umask().toString(8).padStart(3, '0')}`);

    // --- names cannot escape the prefix ---
    const objects: string[] = [];
    const walk = (d: string, rel: string): void => {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        if (e.name.startsWith('.')) continue;
        if (e.isDirectory()) walk(path.join(d, e.name), `${rel}${e.name}/`);
        else objects.push(`${rel}${e.name}`);
      }
    };
    walk(bucket, '');
    for (const name of objects) claim(name === 'nodes/node-a.json' || parseObjectName('', name)?.node === 'node-a', `object ${name} is not a well-formed name of node-a`);
    claim(objects.length >= 2, 'nothing was shipped');

    const scratch = path.join(root, 'scratch');
    fs.mkdirSync(scratch);
    const badNodes = p.allNames ? ['../x', 'a/b', '..', '.x', '', '-x', 'x'.repeat(129), 'a b', 'ä'] : ['../x', 'a/b'];
    for (const node of badNodes) {
      const r = await waitExit(spawnCli(['ship', '--once', '--ledger-dir', path.join(scratch, 'l'), '--dest', path.join(scratch, 'b'), '--node', node]));
      claim(r.code !== 0 && /not safe in an object name/.test(r.stderr), `ship --node ${JSON.stringify(node)}: exit ${r.code}, ${r.stderr.slice(-200)}`);
    }
    for (const dest of p.allNames ? ['gs://b/../x', 'gs://b/a/./x', 'gs://b/a/../../x'] : ['gs://b/../x']) {
      const r = await waitExit(spawnCli(['ship', '--once', '--ledger-dir', path.join(scratch, 'l'), '--dest', dest, '--node', 'n', '--endpoint', 'http://127.0.0.1:9']));
      claim(r.code !== 0 && /contains/.test(r.stderr), `ship --dest ${dest}: exit ${r.code}, ${r.stderr.slice(-200)}`);
      const c = await waitExit(spawnCli(['rollup', '--source', dest, '--out', path.join(scratch, 'o'), '--endpoint', 'http://127.0.0.1:9']));
      claim(c.code !== 0 && /contains/.test(c.stderr), `rollup --source ${dest}: exit ${c.code}, ${c.stderr.slice(-200)}`);
    }
    claim(fs.readdirSync(scratch).length === 0, `refused commands created ${fs.readdirSync(scratch).join(', ')}`);
    claim(fs.readdirSync(root).every((n) => ['ledger', 'bucket', 'out', 'scratch'].includes(n)) && !fs.existsSync(path.join(path.dirname(root), 'x')), 'something was created outside the directories given');
    // NUL cannot travel in argv; the library refuses it everywhere a node id enters.
    let threw = 0;
    for (const fn of [
      () => objectName('', 'ledger', 'a\u0000b', 'ledger-20261101T000000000Z-abcdefgh.jsonl', 0, 1, false),
      () => new FileRecorder({ dir: path.join(scratch, 'nul'), node: 'a\u0000b' }),
      () => objectName('p\u0000q', 'ledger', 'a', 'ledger-20261101T000000000Z-abcdefgh.jsonl', 0, 1, false),
    ]) {
      try {
        fn();
      } catch {
        threw++;
      }
    }
    claim(threw === 3, `NUL in a node id or prefix accepted ${3 - threw} times`);
    claim(await shipOnce({ ledgerDir: ledger, destination: new LocalDirDestination(bucket), node: '../x' }).then(() => false, () => true), 'shipOnce accepted node ../x');
    claim(openRecorder({ dir: path.join(scratch, 'nop'), node: '../x', logger: (await import('pino')).pino({ level: 'silent' }) }).constructor.name === 'NopRecorder', 'openRecorder accepted node ../x');
    fs.rmSync(scratch, { recursive: true, force: true });

    // --- a 403 destination with fake credentials: errors logged, secrets not ---
    const server = await startGcsServer({ buckets: ['ledgers'] });
    server.injectFault({ times: Infinity, action: { type: 'status', status: 403, message: 'caller does not have storage.objects.create access' } });
    const creds = path.join(root, 'fake-sa.json');
    fs.writeFileSync(creds, JSON.stringify({ type: 'service_account', project_id: 'p', private_key_id: 'k1', private_key: `-----BEGIN PRIVATE KEY-----\n${SECRET_KEY}\n-----END PRIVATE KEY-----\n`, client_email: 'shipper@p.iam.gserviceaccount.com', client_id: '1', token_uri: 'http://127.0.0.1:9/token' }), { mode: 0o600 });
    const env = { GOOGLE_APPLICATION_CREDENTIALS: creds, METERING_LOG_LEVEL: 'debug' };
    try {
      const s = startShipperProcess(ledger, 'gs://ledgers/sec', ['--endpoint', server.url, '--state-dir', path.join(root, 'gcs-state')], env);
      const logged = await waitForStderr(s.child, '403', 20_000);
      await sleep(1000);
      s.child.kill('SIGTERM');
      const r = await s.done;
      claim(logged, `the shipper never logged the 403: ${r.stderr.slice(-300)}`);
      for (const [secret, what] of [[SECRET_KEY, 'the private key'], [SECRET_VM, 'a vm id'], [SECRET_LINE, 'a malformed line'], ['Bearer ', 'a bearer token']] as const) {
        claim(!r.stderr.includes(secret), `the shipper's log holds ${what}`);
      }
      const c = await runConsumer('gs://ledgers/sec', path.join(root, 'gcs-out'), ['--endpoint', server.url]);
      claim(c.exit.code !== 0 && /403|access/.test(c.exit.stderr), `rollup against a 403 source: exit ${c.exit.code}, ${c.exit.stderr.slice(0, 200)}`);
      claim(!c.exit.stderr.includes(SECRET_KEY) && !c.exit.stderr.includes('Bearer '), "the consumer's log holds a credential");
      notes.push('the client sends no credentials to a non-Google endpoint; the check covers what the shipper and consumer themselves log');
    } finally {
      await server.stop();
    }
    return { scenario: 'security basics', runs: checks, entries: p.entries, lost: 0, duplicated: 0, maxRssMb: 0, notes, violations };
  } finally {
    removeRoot(root);
  }
}
