/**
 * Disk used by a directory tree (allocated blocks, so sparse files count what they really hold),
 * and a sampler that keeps its peak while a child runs: how the benchmark sees what DuckDB spilled
 * into its temp directory, which DuckDB empties again before the run ends.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

/** Bytes allocated to every file under `p` (0 when it does not exist). Files may vanish meanwhile. */
export function diskBytes(p: string): number {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(p);
  } catch {
    return 0;
  }
  if (!st.isDirectory()) return st.blocks * 512;
  let total = 0;
  let names: string[] = [];
  try {
    names = fs.readdirSync(p);
  } catch {
    return 0;
  }
  for (const n of names) total += diskBytes(path.join(p, n));
  return total;
}

export interface PeakSampler {
  /** Stops sampling; returns the highest size seen (one last sample included). */
  stop(): number;
}

export function samplePeak(p: string, everyMs = 200): PeakSampler {
  let peak = 0;
  const sample = (): void => {
    peak = Math.max(peak, diskBytes(p));
  };
  const timer = setInterval(sample, everyMs);
  return {
    stop: () => {
      clearInterval(timer);
      sample();
      return peak;
    },
  };
}
