import { describe, expect, it } from 'vitest';
import { dumpPayload } from '../../src/rdb/entries.js';
import { encodeCommand } from '../../src/resp/encode.js';
import { RestoreBatchWriter } from '../../src/restore/into/batch.js';
import { uncoveredSlots } from '../../src/restore/into/cluster.js';
import { EXPIRY_MARGIN_MS, expiryFor, keyName } from '../../src/restore/into/decide.js';

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

  it('writes RESTORE with ABSTTL and REPLACE only when asked, each as encodeCommand would', () => {
    const k = Buffer.from('k');
    const v = Buffer.from([0x03, 0x61]);
    // Past the short-copy length, as many values are, and grown past the first buffer.
    const long = Buffer.alloc(300, 0xab);
    const version = 10;
    const plain = new RestoreBatchWriter(false, 64);
    plain.add(k, 0, v, version, { ttl: 0, absolute: false });
    plain.add(Buffer.from([0xff, 0x0d]), 0, long, version, { ttl: 1733000000123, absolute: true });
    expect(plain.size).toBe(2);
    const first = plain.take();
    const restores = [
      encodeCommand(['RESTORE', k, '0', dumpPayload(0, v, version)]),
      encodeCommand([
        'RESTORE',
        Buffer.from([0xff, 0x0d]),
        '1733000000123',
        dumpPayload(0, long, version),
        'ABSTTL',
      ]),
    ];
    expect(first.bytes).toEqual(Buffer.concat(restores));
    expect(first.perKey).toBe(1);
    expect(first.starts).toEqual([0, restores[0]!.length, first.bytes.length]);
    expect(plain.size).toBe(0);

    const replace = new RestoreBatchWriter(true);
    replace.add(k, 2, v, version, { ttl: 9, absolute: false });
    const second = replace.take();
    const exists = encodeCommand(['EXISTS', k]);
    expect(second.bytes).toEqual(
      Buffer.concat([
        exists,
        encodeCommand(['RESTORE', k, '9', dumpPayload(2, v, version), 'REPLACE']),
      ]),
    );
    expect(second.perKey).toBe(2);
    expect(second.starts).toEqual([0, exists.length, second.bytes.length]);
    expect(second.keys).toEqual([k]);
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
