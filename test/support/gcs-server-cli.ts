/**
 * Runs the GCS test server on its own, for demos: `npm run gcs-server -- --port 4443 --bucket demo`.
 * Then `metering ship --dest gs://demo/prefix --gcs-endpoint http://127.0.0.1:4443` (or set
 * STORAGE_EMULATOR_HOST=http://127.0.0.1:4443).
 */
import { parseArgs } from 'node:util';
import { GcsTestServer } from './gcs-server.js';

const HELP = `Usage: npm run gcs-server -- [options]

A Google Cloud Storage JSON API test server (the subset @google-cloud/storage uses).

Options:
  --port <n>              port to listen on (default 0: a free port, printed on start)
  --host <addr>           address to bind (default 127.0.0.1)
  --dir <path>            keep buckets and objects in this directory (default: in memory)
  --bucket <name>         create this bucket at start (repeatable)
  --auto-create-buckets   create buckets on first use instead of answering 404
  -h, --help              show this help
`;

function main(): void {
  let parsed;
  try {
    parsed = parseArgs({
      options: {
        port: { type: 'string', default: '0' },
        host: { type: 'string', default: '127.0.0.1' },
        dir: { type: 'string' },
        bucket: { type: 'string', multiple: true, default: [] },
        'auto-create-buckets': { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
    });
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n\n${HELP}`);
    process.exit(2);
  }
  const v = parsed.values;
  if (v.help) {
    process.stdout.write(HELP);
    return;
  }
  const port = Number(v.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    process.stderr.write(`--port must be an integer from 0 to 65535, got ${JSON.stringify(v.port)}\n`);
    process.exit(2);
  }
  let server: GcsTestServer;
  try {
    server = new GcsTestServer({ host: v.host, port, dir: v.dir, buckets: v.bucket, autoCreateBuckets: v['auto-create-buckets'] });
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    process.exit(2);
  }
  server.start().then(
    (url) => {
      process.stdout.write(`GCS test server listening on ${url}\n`);
      process.stdout.write(`buckets: ${server.bucketNames().join(', ') || '(none)'}${v['auto-create-buckets'] ? ' (more created on first use)' : ''}\n`);
      process.stdout.write(`use: STORAGE_EMULATOR_HOST=${url}  or  apiEndpoint: '${url}'\n`);
    },
    (err: Error) => {
      process.stderr.write(`cannot listen on ${v.host}:${port}: ${err.message}\n`);
      process.exit(1);
    },
  );
  const shutdown = (): void => {
    void server.stop().then(() => process.exit(0));
  };
  process.on('SIGINT', shutdown);
  process.on('SIGTERM', shutdown);
}

main();
