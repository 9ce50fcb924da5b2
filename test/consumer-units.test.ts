/** Unit and property tests of the consumer's pure pieces: hour split, seq coverage, exact usage arithmetic. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { computeUsage, formatRatio, memGibHours, splitByHour, type HourlyRow } from 'metering-ledger/sink';
import { SeqTracker } from './reference/seq-tracker.js';

const HOUR = 3_600_000;

describe('splitByHour', () => {
  it('pieces lie inside one UTC hour each, in order, and sum to the range exactly', () => {
    fc.assert(
      fc.property(fc.integer({ min: 946_684_800_000, max: 7_258_118_400_000 }), fc.integer({ min: 0, max: 50 * HOUR }), (start, len) => {
        const slices = splitByHour(start, start + len);
        expect(slices.reduce((n, s) => n + s.ms, 0)).toBe(len);
        for (const [i, s] of slices.entries()) {
          expect(s.hour % HOUR).toBe(0);
          expect(s.ms > 0 && s.ms <= HOUR).toBe(true);
          if (i > 0) expect(s.hour).toBe(slices[i - 1]!.hour + HOUR);
        }
      }),
    );
  });
});

describe('SeqTracker', () => {
  it('dedups and reports exactly the missing numbers, whatever the arrival order', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 60 }), { maxLength: 80 }), fc.option(fc.integer({ min: 1, max: 70 })), (seqs, shipped) => {
        const t = new SeqTracker();
        const seen = new Set<number>();
        for (const s of seqs) {
          expect(t.add('w', 'n', s)).toBe(!seen.has(s));
          seen.add(s);
        }
        const max = Math.max(0, ...seen, shipped ?? 0);
        const missing: number[] = [];
        for (let s = 1; s <= max; s++) if (!seen.has(s) && (s < Math.max(0, ...seen) || shipped !== null)) missing.push(s);
        const gaps = t.gaps(() => shipped ?? undefined);
        const got = gaps.flatMap((g) => g.missing.flatMap(([lo, hi]) => Array.from({ length: hi - lo + 1 }, (_, i) => lo + i)));
        expect(got).toEqual(seen.size === 0 ? [] : missing);
        for (const s of seen) expect(t.has('w', s)).toBe(true);
      }),
    );
  });
});

describe('usage arithmetic', () => {
  it('rounds half up for display only', () => {
    expect(formatRatio(1n, 3n)).toBe('0.333');
    expect(formatRatio(2n, 3n)).toBe('0.667');
    expect(formatRatio(1n, 2000n)).toBe('0.001');
    expect(formatRatio(1n, 2001n)).toBe('0.000');
    expect(formatRatio(7n, 1n, 0)).toBe('7');
  });

  it('is exact beyond 2^53 (BigInt products of integers)', () => {
    const row: HourlyRow = { hour: '2026-11-01T00:00:00.000Z', family: 'vm.compute', resource_id: 'big', node: 'n', hypervisor: null, cpu: 3, mem_bytes: 2 ** 52 + 1, storage_bytes: 0, ms: HOUR - 1, final: true, version: 1, revises: null, previous_ms: null };
    const rows = Array.from({ length: 1000 }, (_, i) => ({ ...row, hour: new Date(Date.parse(row.hour) + i * HOUR).toISOString() }));
    const t = computeUsage(rows, { by: 'resource' });
    expect(t.total.mem_byte_ms).toBe((2n ** 52n + 1n) * BigInt(HOUR - 1) * 1000n);
    expect(t.total.cpu_ms).toBe(3n * BigInt(HOUR - 1) * 1000n);
    // (2^52 + 1) bytes for 1000 x (1 h - 1 ms) = 4194304000 GiB-h minus a sliver, rounded to 3 decimals.
    expect(memGibHours(t.total)).toBe('4194302834.916');
    expect(computeUsage(rows, { from: Date.parse('2026-11-01T10:30:00Z'), to: Date.parse('2026-11-01T12:00:00Z') }).total.cpu_ms).toBe(3n * BigInt(HOUR - 1) * 2n);
  });
});
