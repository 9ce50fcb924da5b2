/**
 * Every scenario of the TypeScript consumer, replayed through the DuckDB twin: runRollup is wrapped
 * so that each call also runs runSqlRollup on exactly what that call saw (same listing, same reads,
 * same injected faults, its own state database per state file) and asserts that both agree on
 * intervals, hourly rows with versions, revisions and the report. The scenarios' own assertions run
 * unchanged on the TypeScript results.
 */
import { afterAll, expect, vi } from 'vitest';

const counter = vi.hoisted(() => ({ comparisons: (): number => 0 }));

vi.mock('metering-ledger/sink', async (importOriginal) => {
  const real = await importOriginal<typeof import('metering-ledger/sink')>();
  const { twinRollup } = await import('./support/twin.js');
  const twin = twinRollup(real.runRollup, real.runSqlRollup);
  counter.comparisons = twin.comparisons;
  return { ...real, runRollup: twin.run };
});

await import('./consumer-scenarios.test.js');
await import('./consumer-rules-v2.test.js');

afterAll(() => {
  // The wrapper really ran: the scenarios call runRollup dozens of times.
  expect(counter.comparisons()).toBeGreaterThan(20);
});
