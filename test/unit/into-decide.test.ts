import { describe, expect, it } from 'vitest';
import { encodeCommand } from '../../src/resp/encode.js';
import { uncoveredSlots } from '../../src/restore/into/cluster.js';
import {
  EXPIRY_MARGIN_MS,
  expiryFor,
  keyName,
  restoreCommand,
} from '../../src/restore/into/decide.js';

describe('--into decisions', () => {
  const until = 1_000_000;
  const now = 2_000_000;

  it('keeps an absolute expiry that is still ahead, and counts one that has passed', () => {
    expect(expiryFor(-1, 'keep', until, now)).toEqual({ kind: 'ttl', ttl: 0, absolute: false });
    expect(expiryFor(now + 60_000, 'keep', until, now)).toEqual({
      kind: 'ttl',
      ttl: now + 60_000,
      absolute: true,
    });
    expect(expiryFor(now - 1, 'keep', until, now).kind).toBe('expired');
    expect(expiryFor(now + EXPIRY_MARGIN_MS, 'keep', until, now).kind).toBe('expired');
  });

  it('shifts the time left at T to start now, and counts a key already expired at T', () => {
    expect(expiryFor(until + 5_000, 'shift', until, now)).toEqual({
      kind: 'ttl',
      ttl: 5_000,
      absolute: false,
    });
    expect(expiryFor(until, 'shift', until, now).kind).toBe('expired');
    expect(expiryFor(-1, 'shift', until, now)).toEqual({ kind: 'ttl', ttl: 0, absolute: false });
  });

  it('builds RESTORE with ABSTTL and REPLACE only when asked', () => {
    const k = Buffer.from('k');
    const v = Buffer.from('v');
    // As Redis reads it: the arguments' bytes.
    expect(restoreCommand(k, v, { ttl: 0, absolute: false }, false)).toEqual(
      encodeCommand(['RESTORE', k, '0', v]),
    );
    expect(restoreCommand(k, v, { ttl: 9, absolute: true }, true)).toEqual(
      encodeCommand(['RESTORE', k, '9', v, 'ABSTTL', 'REPLACE']),
    );
    expect(restoreCommand(k, v, { ttl: 1733000000123, absolute: true }, false)).toEqual(
      encodeCommand(['RESTORE', k, '1733000000123', v, 'ABSTTL']),
    );
    // A payload past the short-copy length, as most values are.
    const long = Buffer.alloc(300, 0xab);
    expect(restoreCommand(k, long, { ttl: 5, absolute: false }, true)).toEqual(
      encodeCommand(['RESTORE', k, '5', long, 'REPLACE']),
    );
  });

  it('names binary keys with escapes', () => {
    expect(keyName(Buffer.from('user:1'))).toBe('user:1');
    expect(keyName(Buffer.from([0x61, 0xff, 0x00]))).toBe('a\\xff\\x00');
  });

  it('lists the slot ranges nobody serves', () => {
    const owner: Array<string | undefined> = new Array(16384).fill('a');
    expect(uncoveredSlots(owner)).toEqual([]);
    owner[0] = undefined;
    for (let s = 100; s <= 200; s++) owner[s] = undefined;
    owner[16383] = undefined;
    expect(uncoveredSlots(owner)).toEqual([
      [0, 0],
      [100, 200],
      [16383, 16383],
    ]);
  });
});
