/** The GCS test server in its own process, objects on disk, so its CPU and memory are not the shipper's. */
import { spawnMeasured, type MeasuredChild } from './child.js';

export interface GcsChild {
  url: string;
  stop(): Promise<void>;
}

export async function startGcsChild(dir: string, bucket: string): Promise<GcsChild> {
  const server: MeasuredChild = spawnMeasured(['test/support/gcs-server-cli.ts', '--dir', dir, '--bucket', bucket], { typescript: true });
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`GCS test server did not start: ${out}`)), 30_000);
    server.child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    void server.done.then((r) => reject(new Error(`GCS test server exited ${r.code}: ${r.stderr}`)));
  });
  return {
    url,
    stop: async () => {
      server.child.kill('SIGTERM');
      await server.done;
    },
  };
}
