// Preloaded into a benchmarked child (`node --import ./rusage-preload.mjs ...`): on exit, writes the
// process's own peak RSS and CPU time to $BENCH_RUSAGE_FILE. getrusage is exact where sampling
// /proc would miss a peak between two samples, and it needs no /usr/bin/time on the machine.
// With $BENCH_MEMORY_SAMPLE_MS it also samples process.memoryUsage() and reports the breakdown at
// the sample with the highest RSS (V8 heap vs Buffers outside it), to explain a peak.
import { writeFileSync } from 'node:fs';

const file = process.env.BENCH_RUSAGE_FILE;
const sampleMs = Number(process.env.BENCH_MEMORY_SAMPLE_MS ?? 0);
if (file) {
  let peak;
  if (sampleMs > 0) {
    const sample = () => {
      const m = process.memoryUsage();
      if (!peak || m.rss > peak.rss) peak = m;
    };
    setInterval(sample, sampleMs).unref();
  }
  process.on('exit', () => {
    const u = process.resourceUsage();
    writeFileSync(file, JSON.stringify({ maxRssKb: u.maxRSS, userUs: u.userCPUTime, systemUs: u.systemCPUTime, atPeak: peak }));
  });
}
