/**
 * The engine's DuckDB hands freed memory back to the operating system soon (ALLOCATOR_SETTINGS in
 * sink/consumer/engine/duckdb-engine.ts). With DuckDB's defaults this glibc build kept up to
 * ~0.9 GiB above memory_limit resident on a 10 M entry run (docs/benchmarks.md); the memory itself
 * is measured by `npm run bench -- consumer`, this checks a run is configured so.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { runRollup } from 'metering-ledger/sink';
import { HOUR, T0, TestBucket, TestWriter } from './support/consumer-bucket.js';
import { tempDir } from './support/tmp.js';

describe('DuckDB allocator', () => {
  it('a run flushes freed memory after 8 MiB (DuckDB: 128 MiB), before a large allocation after 32 MiB of frees (512 MiB), on a background thread', async () => {
    const t = tempDir('allocator');
    onTestFinished(t.cleanup);
    const writer = new TestWriter('node-a', 'w1');
    await new TestBucket(`${t.dir}/bucket`).put([writer.start('vm-1', T0), writer.stop('vm-1', T0 + HOUR)]);
    let seen: Record<string, unknown> | undefined;
    await runRollup({
      source: `${t.dir}/bucket`,
      out: `${t.dir}/out`,
      now: T0 + 2 * HOUR,
      onStatement: async (_sql, execute, session) => {
        seen ??= (
          await session.rows(
            "SELECT current_setting('allocator_flush_threshold') AS flush, current_setting('allocator_bulk_deallocation_flush_threshold') AS bulk, current_setting('allocator_background_threads') AS background",
          )
        )[0];
        await execute();
      },
    });
    expect(seen).toEqual({ flush: '8.0 MiB', bulk: '32.0 MiB', background: true });
  });
});
