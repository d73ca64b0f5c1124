import { describe, expect, it } from 'vitest';
import { encodeCommand } from '../../src/resp/encode.js';
import { absoluteExpiry } from '../../src/restore/expiry.js';
import { parseArgs } from '../../src/store/commands.js';

const T = 1_800_000_000_000;
const translate = (...args: string[]) => {
  const out = absoluteExpiry(encodeCommand(args), T);
  return out === null ? null : parseArgs(out).map(String);
};

describe('absoluteExpiry: Redis 6 relative expiries, made absolute from the capture time', () => {
  it('rewrites each relative form the way Redis 6 writes its own AOF', () => {
    expect(translate('EXPIRE', 'k', '100')).toEqual(['PEXPIREAT', 'k', String(T + 100_000)]);
    expect(translate('pexpire', 'k', '250', 'NX')).toEqual([
      'PEXPIREAT',
      'k',
      String(T + 250),
      'NX',
    ]);
    expect(translate('SET', 'k', 'v', 'PX', '500')).toEqual([
      'SET',
      'k',
      'v',
      'PXAT',
      String(T + 500),
    ]);
    expect(translate('set', 'k', 'v', 'NX', 'ex', '2')).toEqual([
      'set',
      'k',
      'v',
      'NX',
      'PXAT',
      String(T + 2000),
    ]);
    expect(translate('SETEX', 'k', '3', 'v')).toEqual(['SET', 'k', 'v', 'PXAT', String(T + 3000)]);
    expect(translate('PSETEX', 'k', '7', 'v')).toEqual(['SET', 'k', 'v', 'PXAT', String(T + 7)]);
    expect(translate('RESTORE', 'k', '900', 'payload', 'REPLACE')).toEqual([
      'RESTORE',
      'k',
      String(T + 900),
      'payload',
      'REPLACE',
      'ABSTTL',
    ]);
  });

  it('leaves absolute and expiry-free writes alone', () => {
    expect(translate('SET', 'k', 'v')).toBeNull();
    expect(translate('SET', 'k', 'v', 'PXAT', '1')).toBeNull();
    expect(translate('SET', 'k', 'EX', 'v')).toBeNull();
    expect(translate('PEXPIREAT', 'k', '1')).toBeNull();
    expect(translate('RESTORE', 'k', '0', 'payload')).toBeNull();
    expect(translate('RESTORE', 'k', '5', 'payload', 'ABSTTL')).toBeNull();
    expect(translate('HSET', 'h', 'EX', '5')).toBeNull();
  });
});
