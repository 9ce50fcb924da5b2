import * as fs from 'node:fs';
import * as path from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, test, vi } from 'vitest';
import { CaptureRecorder, LedgerLineSplitter, parseLedgerBuffer, readLedger, serializeEntry, type LedgerRecord } from 'metering-ledger';
import { vmStart } from './support/entries.js';
import { tempDir } from './support/tmp.js';

const tmp = tempDir('reader');
afterAll(tmp.cleanup);

function lines(n: number): string[] {
  const rec = new CaptureRecorder({ node: 'n' });
  for (let i = 0; i < n; i++) rec.emit(vmStart(`vm-${i}`));
  return rec.entries().map(serializeEntry);
}

describe('ledger reader', () => {
  test('yields entries in file order with exact byte offsets', async () => {
    const ls = lines(5);
    const file = path.join(tmp.dir, 'a.jsonl');
    fs.writeFileSync(file, ls.map((l) => l + '\n').join(''));
    const out: LedgerRecord[] = [];
    for await (const r of readLedger(file)) out.push(r);
    let offset = 0;
    out.forEach((r, i) => {
      expect(r).toMatchObject({ type: 'entry', offset, length: Buffer.byteLength(ls[i]!) + 1 });
      offset += r.length;
    });
    // Resume from an offset in the middle.
    const resumed: LedgerRecord[] = [];
    for await (const r of readLedger(file, { start: out[3]!.offset })) resumed.push(r);
    expect(resumed.map((r) => r.offset)).toEqual([out[3]!.offset, out[4]!.offset]);
  });

  test('reports bad lines with their offset and keeps every valid line around them', () => {
    const [a, b, c] = lines(3);
    const bad = [
      'not json at all',
      '{"v":1}',
      '{"v":2,"id":"x"}',
      '[1,2,3]',
      JSON.stringify({ ...JSON.parse(a!), kind: 'vm.gpu.start' }),
      JSON.stringify({ ...JSON.parse(a!), shape: { cpu: '2', mem_bytes: 0, storage_bytes: 0 } }),
      JSON.stringify({ ...JSON.parse(a!), emitted_at: '3000-01-01T00:00:00.000Z' }),
    ];
    const data = Buffer.concat([
      Buffer.from(a + '\n'),
      ...bad.map((l) => Buffer.from(l + '\n')),
      Buffer.from([0xff, 0xfe, 0x7b, 0x0a]), // invalid UTF-8
      Buffer.from('\n\n'), // blank lines carry nothing
      Buffer.from(b + '\n'),
      Buffer.from(c!.slice(0, 40)), // torn tail, no newline
    ]);
    const out = parseLedgerBuffer(data);
    expect(out.filter((r) => r.type === 'entry').map((r) => (r.type === 'entry' ? r.entry.vm_id : ''))).toEqual(['vm-0', 'vm-1']);
    const invalid = out.filter((r) => r.type === 'invalid');
    expect(invalid).toHaveLength(bad.length + 2);
    expect(invalid.map((r) => (r.type === 'invalid' ? r.reason : ''))).toEqual([
      'line is not valid JSON',
      expect.stringMatching(/id is required/),
      expect.stringMatching(/unsupported wire version 2/),
      'line is not a JSON object',
      expect.stringMatching(/unknown kind/),
      expect.stringMatching(/shape.cpu must be a safe integer/),
      expect.stringMatching(/outside years/),
      'line is not valid UTF-8',
      'torn line (no trailing newline)',
    ]);
    // Offsets point at the bytes reported.
    for (const r of out) expect(data.subarray(r.offset, r.offset + r.line.length).equals(r.line)).toBe(true);
  });

  test('over-long lines are skipped with bounded memory and reported', () => {
    const [a] = lines(1);
    const splitter = new LedgerLineSplitter(0, 1000);
    const out: LedgerRecord[] = [];
    splitter.push(Buffer.from(a + '\n'), out);
    for (let i = 0; i < 100; i++) {
      splitter.push(Buffer.alloc(10_000, 0x41), out);
      expect(splitter.pendingLength).toBeGreaterThan(0);
    }
    splitter.push(Buffer.from('\n' + a + '\n'), out);
    expect(out.map((r) => r.type)).toEqual(['entry', 'invalid', 'entry']);
    expect(out[1]).toMatchObject({ length: 1_000_001, reason: 'line longer than 1000 bytes' });
    expect(out[1]!.line.length).toBeLessThanOrEqual(1024);
    expect(splitter.offset).toBe(2 * (Buffer.byteLength(a!) + 1) + 1_000_001);
  });

  test('property: any chunking of any mix of good and bad lines gives the same records', () => {
    const good = lines(20);
    const lineArb = fc.oneof(fc.constantFrom(...good), fc.string({ maxLength: 50 }).map((s) => s.replaceAll('\n', ' ')));
    fc.assert(
      fc.property(fc.array(lineArb, { maxLength: 30 }), fc.array(fc.integer({ min: 1, max: 400 }), { minLength: 1, maxLength: 10 }), (ls, cuts) => {
        const data = Buffer.from(ls.map((l) => l + '\n').join(''));
        const whole = parseLedgerBuffer(data);
        const splitter = new LedgerLineSplitter();
        const pieces: LedgerRecord[] = [];
        let at = 0;
        let i = 0;
        while (at < data.length) {
          const n = cuts[i++ % cuts.length]!;
          splitter.push(data.subarray(at, at + n), pieces);
          at += n;
        }
        expect(pieces.map((r) => [r.type, r.offset, r.length])).toEqual(whole.map((r) => [r.type, r.offset, r.length]));
        expect(splitter.offset).toBe(data.length);
        // Every good line comes back as an entry.
        expect(whole.filter((r) => r.type === 'entry')).toHaveLength(ls.filter((l) => good.includes(l)).length);
      }),
      { numRuns: 200 },
    );
  });

  test('a line full of {"v": markers is parsed in linear time (one JSON.parse per candidate, not per marker)', async () => {
    // 520 KB of markers through a real file: before the fix every marker cost a JSON.parse of the
    // rest of the line (quadratic: 38 s and 322 MiB for this line).
    const good = lines(1)[0]!;
    const markers = '{"v":'.repeat(104_000);
    const file = path.join(tmp.dir, 'markers.jsonl');
    fs.writeFileSync(file, `${markers}${good}\n${markers}\n`);
    const parse = vi.spyOn(JSON, 'parse');
    try {
      const out: LedgerRecord[] = [];
      for await (const r of readLedger(file, { maxLineBytes: 1024 * 1024 })) out.push(r);
      expect(out.map((r) => r.type)).toEqual(['invalid', 'entry', 'invalid']);
      expect(out[0]).toMatchObject({ reason: 'torn line (an interrupted write)', offset: 0, length: markers.length });
      expect(out[1]).toMatchObject({ offset: markers.length });
      expect(out[2]).toMatchObject({ reason: 'line is not valid JSON' });
      // Two lines: at most the whole line and one tail each.
      expect(parse.mock.calls.length).toBeLessThanOrEqual(4);
    } finally {
      parse.mockRestore();
    }
  });
});
