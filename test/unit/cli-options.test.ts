import { describe, expect, it } from 'vitest';
import { parse } from '../../src/cli/options.js';
import { RfError } from '../../src/errors.js';

function refusal(fn: () => unknown): RfError {
  try {
    fn();
  } catch (err) {
    if (err instanceof RfError) return err;
    throw err;
  }
  throw new Error('expected an RfError');
}

describe('the one parser of each kind of option value', () => {
  it('reads durations with a unit, and a bare number in the unit the flag names', () => {
    const ms = parse.duration('--target-timeout', 'ms', 1);
    expect(ms('2m')).toBe(120_000);
    expect(ms('250ms')).toBe(250);
    expect(ms('120000')).toBe(120_000);
    expect(parse.duration('--reconnect-window', 's')('90')).toBe(90_000);
    expect(parse.durationOr('--base-every', 'off')('off')).toBeNull();
    expect(parse.durationOr('--base-every', 'off')('6h')).toBe(6 * 3600_000);
  });

  it('reads sizes with k, m and g suffixes', () => {
    const bytes = parse.bytes('--chunk-size');
    expect(bytes('64k')).toBe(64 * 1024);
    expect(bytes('1m')).toBe(1024 * 1024);
    expect(bytes('4096')).toBe(4096);
  });

  it('refuses a bad value with RF_USAGE naming the flag and the value', () => {
    for (const [fn, flag, value] of [
      [parse.duration('--target-timeout', 'ms', 1), '--target-timeout', '2 minutes'],
      [parse.duration('--flush-interval', 'ms', 1), '--flush-interval', '0'],
      [parse.durationOr('--retain', 'forever'), '--retain', '7'],
      [parse.bytes('--segment-size'), '--segment-size', 'lots'],
      [parse.whole('--db'), '--db', '-1'],
      [parse.clockTime('--rewrite-at'), '--rewrite-at', '25:00'],
      [parse.sourceName('--name'), '--name', '../../escape'],
      [parse.sourceName('--name'), '--name', 'a/b'],
      [parse.nonEmpty('--key', 'a glob'), '--key', ''],
    ] as const) {
      const err = refusal(() => fn(value));
      expect(err.code).toBe('RF_USAGE');
      expect(err.exitCode).toBe(2);
      expect(err.message).toContain(flag);
      expect(err.details).toMatchObject({ flag, value });
    }
  });

  it('accepts the source names the store has always taken', () => {
    for (const name of ['default', 'cache-1', 'eu.west_2', 'A'])
      expect(parse.sourceName('--name')(name)).toBe(name);
  });
});
