/**
 * A shipper child process whose destination acknowledges each stored object only after a random
 * delay (0..ACK_DELAY_MS): the object is in the bucket, the shipper does not know yet. Killing it
 * then is the crash window that matters (object stored, position not saved), made wide on purpose.
 * Usage: slow-ack-shipper.ts <ledger-dir> <bucket-dir> (env ACK_DELAY_MS, default 40)
 */
import { LocalDirDestination, startShipper, type Destination } from 'metering-ledger/sink';

const [ledgerDir, bucket] = process.argv.slice(2);
if (!ledgerDir || !bucket) throw new Error('usage: slow-ack-shipper.ts <ledger-dir> <bucket-dir>');
const maxDelay = Number(process.env.ACK_DELAY_MS ?? 40);
const inner = new LocalDirDestination(bucket);
const slow: Destination = {
  description: `slow-ack+${inner.description}`,
  putIfAbsent: async (name, body, options) => {
    const r = await inner.putIfAbsent(name, body, options);
    await new Promise((res) => setTimeout(res, Math.random() * maxDelay));
    return r;
  },
  put: (name, body, options) => inner.put(name, body, options),
  get: (name) => inner.get(name),
  head: (name) => inner.head(name),
  list: (prefix) => inner.list(prefix),
  delete: (name) => inner.delete(name),
};
const running = await startShipper({ ledgerDir, destination: slow, node: 'node-a', batchBytes: 16 * 1024, batchMs: 30, rescanMs: 100, progressMs: 300, sealQuietMs: 300, retry: { baseMs: 20, capMs: 200 } });
process.stderr.write('shipper: started\n');
process.on('SIGTERM', () => void running.stop());
await running.done;
