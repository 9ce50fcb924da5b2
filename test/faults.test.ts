/**
 * The LIGHT version of every fault scenario of test/faults/ (the heavy one is `npm run test:faults`):
 * the whole pipeline (recorder -> ledger -> shipper -> objects -> consumer) with real processes, under
 * crashes, full disks, destination faults, bad input, concurrency, and the security basics. Each
 * scenario counts what was lost and what was counted twice, and lists every other claim that failed.
 */
import { describe, expect, it } from 'vitest';
import { SCENARIOS } from './faults/scenarios.js';

describe('fault scenarios (light)', () => {
  for (const s of SCENARIOS) {
    if (!s.light) continue;
    const run = s.light;
    it(s.name, { timeout: 180_000 }, async (ctx) => {
      const r = await run();
      const skipped = r.notes.find((n) => n.startsWith('SKIPPED'));
      if (skipped) {
        console.warn(`${s.name}: ${skipped}`);
        ctx.skip(skipped);
        return;
      }
      expect(r.violations, r.notes.join('\n')).toEqual([]);
      expect(r.lost, 'acknowledged entries lost').toBe(0);
      expect(r.duplicated, 'entries counted twice').toBe(0);
      expect(r.entries + r.runs, 'the scenario did something').toBeGreaterThan(0);
    });
  }
});
