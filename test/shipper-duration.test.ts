import { describe, expect, it } from 'vitest';
import { parseByteSize, parseDuration } from 'metering-ledger/sink';

describe('parseDuration / parseByteSize (flag values)', () => {
  it('parses units and sums', () => {
    expect(parseDuration('500ms')).toBe(500);
    expect(parseDuration('30s')).toBe(30_000);
    expect(parseDuration('30m')).toBe(1_800_000);
    expect(parseDuration('12h')).toBe(43_200_000);
    expect(parseDuration('7d')).toBe(604_800_000);
    expect(parseDuration('2w')).toBe(1_209_600_000);
    expect(parseDuration('1h30m')).toBe(5_400_000);
    expect(parseDuration(' 1.5s ')).toBe(1500);
  });

  it('refuses ambiguous or malformed text with a message naming it', () => {
    for (const bad of ['', '7', 'd', '7x', '-1h', '1h 30m', '1hh', 'ms']) {
      expect(() => parseDuration(bad), bad).toThrow(/invalid duration/);
    }
  });

  it('parses byte sizes', () => {
    expect(parseByteSize('8388608')).toBe(8 * 1024 * 1024);
    expect(parseByteSize('8MiB')).toBe(8 * 1024 * 1024);
    expect(parseByteSize('64KiB')).toBe(65536);
    expect(parseByteSize('1GB')).toBe(1e9);
    expect(() => parseByteSize('8 parsecs')).toThrow(/invalid size/);
    expect(() => parseByteSize('')).toThrow(/invalid size/);
  });
});
