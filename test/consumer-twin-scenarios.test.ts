/**
 * Every scenario of the reference model, replayed through the engine: the reference's runRollup is
 * wrapped so that each call also runs the engine (runRollup of metering-ledger/sink) on exactly
 * what that call saw (same listing, same reads, same injected faults, its own state database per
 * state file) and asserts that both agree on intervals, hourly rows with versions, revisions and
 * the report. The scenarios' own assertions run unchanged on the reference's results.
 */
import { afterAll, expect, vi } from 'vitest';

const counter = vi.hoisted(() => ({ comparisons: (): number => 0, cleanup: (): void => {} }));

vi.mock('./reference/run-rollup.js', async (importOriginal) => {
  const reference = await importOriginal<typeof import('./reference/run-rollup.js')>();
  const { runRollup: engine } = await import('metering-ledger/sink');
  const { twinRollup } = await import('./support/twin.js');
  const twin = twinRollup(reference.runRollup, engine);
  counter.comparisons = twin.comparisons;
  counter.cleanup = twin.cleanup;
  return { ...reference, runRollup: twin.run };
});

await import('./consumer-scenarios.test.js');
await import('./consumer-rules-v2.test.js');

afterAll(() => {
  // The engine's state databases (one per state file the scenarios used) go with the suite.
  counter.cleanup();
  // The wrapper really ran: the scenarios call runRollup dozens of times.
  expect(counter.comparisons()).toBeGreaterThan(20);
});
