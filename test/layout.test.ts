import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { assertSafeNode, nodeProgressName, normalizePrefix, objectName, parseObjectName, segmentDate } from 'metering-ledger/sink';

const SEG = 'ledger-20261124T080530123Z-k3j9x2qa.jsonl';

describe('object layout', () => {
  test('names are hive-partitioned, zero-padded by offset and parse back', () => {
    const name = objectName('billing/eu', 'ledger', 'node-1', SEG, 0, 4096, true);
    expect(name).toBe('billing/eu/ledger/node=node-1/dt=2026-11-24/ledger-20261124T080530123Z-k3j9x2qa.0000000000000000-0000000000004096.ndjson.gz');
    expect(parseObjectName('billing/eu', name)).toEqual({ cls: 'ledger', node: 'node-1', dt: '2026-11-24', segment: SEG, gen: 0, start: 0, end: 4096, gzip: true });
    const q = objectName('', 'quarantine', 'n', SEG, 10, 20, false, 3);
    expect(q).toBe('quarantine/node=n/dt=2026-11-24/ledger-20261124T080530123Z-k3j9x2qa.g3.0000000000000010-0000000000000020.ndjson');
    expect(parseObjectName('', q)).toMatchObject({ cls: 'quarantine', gen: 3, start: 10, end: 20 });
    expect(nodeProgressName('/p/', 'n1')).toBe('p/nodes/n1.json');
    expect(segmentDate(SEG)).toBe('2026-11-24');
  });

  test('the same segment and range always give the same name (a retry is a no-op)', () => {
    expect(objectName('p', 'ledger', 'n', SEG, 5, 9, false)).toBe(objectName('p', 'ledger', 'n', SEG, 5, 9, false));
  });

  test('node ids, prefixes and segment names cannot escape the bucket prefix', () => {
    for (const bad of ['../x', 'a/b', '', '.', '..', 'a\0b', '-lead', 'x'.repeat(200), 'ä']) expect(() => assertSafeNode(bad)).toThrow(/not safe/);
    expect(() => objectName('p', 'ledger', '../../etc', SEG, 0, 1, false)).toThrow(/not safe/);
    expect(() => normalizePrefix('a/../b')).toThrow(/\.\./);
    expect(() => normalizePrefix('a/\0/b')).toThrow();
    expect(normalizePrefix('//a//b/')).toBe('a/b');
    expect(() => objectName('p', 'ledger', 'n', '../ledger.jsonl', 0, 1, false)).toThrow(/segment/);
    expect(() => objectName('p', 'ledger', 'n', SEG, 5, 5, false)).toThrow(/byte range/);
    expect(() => objectName('p', 'ledger', 'n', SEG, -1, 5, false)).toThrow(/byte range/);
  });

  test('property: any string either is refused as a node id or yields a name inside the prefix', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 40 }), (node) => {
        let name: string;
        try {
          name = objectName('root', 'ledger', node, SEG, 0, 1, false);
        } catch {
          return;
        }
        const parts = name.split('/');
        expect(parts[0]).toBe('root');
        expect(parts.every((p) => p !== '..' && p !== '.' && p.length > 0 && !p.includes('\0'))).toBe(true);
        expect(parseObjectName('root', name)?.node).toBe(node);
      }),
      { numRuns: 500 },
    );
  });

  test('foreign names do not parse', () => {
    for (const n of ['ledger/node=n/dt=2026-01-01/other.ndjson', 'x/ledger/node=n/dt=d/f', 'ledger/node=n/dt=d/sub/' + SEG]) expect(parseObjectName('', n)).toBeUndefined();
  });
});
