/** The small pure pieces of the CLI and the report, one contract each. */
import { describe, expect, it } from 'vitest';
import { parseTime } from '../sink/commands/time-flag.js';
import type { FlagValueError } from '../sink/commands/flag-parser.js';
import { describeSource, humanTime, niceTicks } from '../sink/consumer/usage-html.js';
import { errorReason } from '../sink/shipper/metrics-server.js';
import { destinationLabel } from '../sink/shipper/status.js';
import { formatHumanLine } from '../sink/shipper/cli-logger.js';
import { PermanentDestinationError } from 'metering-ledger/sink';

const hintOf = (fn: () => unknown): string | undefined => {
  try {
    fn();
  } catch (err) {
    return (err as FlagValueError).hint;
  }
  return undefined;
};

describe('parseTime (--from, --to, --now)', () => {
  it('takes RFC 3339 times with a zone and bare dates (UTC midnight)', () => {
    expect(parseTime('2026-11-24').toISOString()).toBe('2026-11-24T00:00:00.000Z');
    expect(parseTime('2026-11-24T10:30Z').toISOString()).toBe('2026-11-24T10:30:00.000Z');
    expect(parseTime('2026-11-24T10:30:15.5+02:00').toISOString()).toBe('2026-11-24T08:30:15.500Z');
    expect(parseTime('2028-02-29').toISOString()).toBe('2028-02-29T00:00:00.000Z');
  });
  it('refuses impossible dates and times instead of rolling them over, always with the hint', () => {
    for (const [input, why] of [
      ['2026-02-30', '2026-02 has no day 30'],
      ['2026-02-29', '2026-02 has no day 29'],
      ['2026-04-31', '2026-04 has no day 31'],
      ['2026-13-01', 'there is no month 13'],
      ['2026-00-10', 'there is no month 0'],
      ['2026-11-24T24:00Z', 'is not a time of day'],
      ['2026-11-24T10:60Z', 'is not a time of day'],
      ['2026-11-24T10:00+25:00', 'is not a zone offset'],
    ]) {
      expect(() => parseTime(input!), input).toThrow(why!);
      expect(hintOf(() => parseTime(input!)), input).toMatch(/^use ISO 8601 with a zone, e\.g\. 2026-11-24T10:00:00Z/);
    }
    for (const input of ['yesterday', '2026-3-1', '2026-11-24T10:00', '24.11.2026', '']) {
      expect(() => parseTime(input), input).toThrow(/invalid time .*: not an ISO 8601 time with a zone, nor a date/);
      expect(hintOf(() => parseTime(input)), input).toMatch(/^use ISO 8601 with a zone/);
    }
  });
});

describe('the HTML report helpers', () => {
  it('human times', () => {
    expect(humanTime('2026-11-20T14:00:00.000Z')).toBe('20 Nov 2026 14:00 UTC');
  });
  it('no local absolute paths: a directory by its name, a bucket URL as is (without credentials)', () => {
    expect(describeSource('/home/alice/secret/bucket')).toBe('local bucket directory “bucket”');
    expect(describeSource('file:///srv/metering/bucket/')).toBe('local bucket directory “bucket”');
    expect(describeSource('gs://ledgers/prod/eu')).toBe('gs://ledgers/prod/eu');
  });
  it('round y ticks covering the maximum', () => {
    expect(niceTicks(6)).toEqual([0, 2, 4, 6]);
    expect(niceTicks(12)).toEqual([0, 2.5, 5, 7.5, 10, 12.5]);
    expect(niceTicks(0.3)).toEqual([0, 0.1, 0.2, 0.3]);
    expect(niceTicks(0)).toEqual([0, 1]);
    const t = niceTicks(1234);
    expect(t[t.length - 1]).toBeGreaterThanOrEqual(1234);
    expect(t.length).toBeLessThanOrEqual(7);
  });
});

describe('metrics and status helpers', () => {
  it('classifies destination errors into a fixed set of reasons', () => {
    expect(errorReason(new PermanentDestinationError('403', 'fix the key', 403))).toBe('permanent');
    expect(errorReason(Object.assign(new Error('x'), { status: 429 }))).toBe('throttled');
    expect(errorReason(Object.assign(new Error('x'), { status: 503 }))).toBe('server');
    expect(errorReason(Object.assign(new Error('x'), { status: 404 }))).toBe('client');
    expect(errorReason(Object.assign(new Error('x'), { code: 'ECONNRESET' }))).toBe('network');
    expect(errorReason(Object.assign(new Error('request timed out'), {}))).toBe('timeout');
    expect(errorReason(Object.assign(new Error('x'), { code: 'ENOSPC' }))).toBe('disk');
    expect(errorReason(new Error('?'))).toBe('other');
  });
  it('status shows the destination with its prefix', () => {
    expect(destinationLabel('gs://ledgers', 'team-a/eu')).toBe('gs://ledgers/team-a/eu');
    expect(destinationLabel('gs://ledgers (endpoint http://127.0.0.1:4443)', 'p')).toBe('gs://ledgers/p (endpoint http://127.0.0.1:4443)');
    expect(destinationLabel('file:///srv/bucket', '')).toBe('file:///srv/bucket');
  });
  it('a pino record on a terminal: errors as "metering <cmd>: message" with the hint, others one short line', () => {
    const err = JSON.stringify({ level: 50, time: 0, pid: 1, hostname: 'h', name: 'metering-shipper', err: 'disk gone', hint: 'free space', exit_code: 1, msg: 'shipper failed' });
    expect(formatHumanLine('metering ship', err)).toBe('metering ship: shipper failed: disk gone\n  hint: free space\n');
    const info = formatHumanLine('metering ship', JSON.stringify({ level: 30, time: Date.UTC(2026, 0, 1, 12), pid: 1, msg: 'shipper: drained', objects: 3 }));
    expect(info).toMatch(/^\d{2}:\d{2}:\d{2} shipper: drained {2}objects=3\n$/);
    expect(formatHumanLine('metering ship', JSON.stringify({ level: 40, msg: 'slow', what: 'a b' }))).toBe('warning: slow  what="a b"\n');
  });
});
