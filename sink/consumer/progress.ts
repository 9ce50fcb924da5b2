/** Progress of a long rollup on a terminal: one line on stderr, redrawn at most every 100 ms. */
import type { RollupProgress } from './rollup-options.js';

export function ttyProgress(stream: NodeJS.WriteStream = process.stderr): { onProgress: (p: RollupProgress) => void; done: () => void } {
  let last = 0;
  let shown = false;
  const onProgress = (p: RollupProgress): void => {
    const now = Date.now();
    if (p.phase === 'read' && p.objectsDone < p.objectsTotal && now - last < 100) return;
    last = now;
    const pct = p.objectsTotal ? Math.floor((100 * p.objectsDone) / p.objectsTotal) : 100;
    const text = p.phase === 'read' ? `reading objects ${p.objectsDone}/${p.objectsTotal} (${pct}%), ${p.entries} entries` : `${p.phase === 'list' ? 'listing objects' : p.phase === 'compute' ? 'computing intervals and rollups' : 'writing outputs'}...`;
    stream.write(`\r\x1b[2K${text}`);
    shown = true;
  };
  const done = (): void => {
    if (shown) stream.write('\r\x1b[2K');
  };
  return { onProgress, done };
}
