import { describe, expect, it } from 'vitest';
import { cutFrames } from '../../src/aof/cut.js';
import { isRfError } from '../../src/errors.js';
import { encodeCommand } from '../../src/resp/encode.js';

const cmd = (...args: string[]) => encodeCommand(args);
const ts = (t: number) => Buffer.from(`#TS:${t}\r\n`);

describe('cutFrames', () => {
  const a = cmd('SET', 'a', '1');
  const b = cmd('SET', 'b', '2');
  const c = cmd('RPUSH', 'l', 'x', 'y');
  const all = Buffer.concat([ts(1700000000), a, b, ts(1700000001), c]);

  it('takes every whole frame that fits, and reports the commands and #TS annotations in them', () => {
    const cut = cutFrames(all, 0, all.length, 'f');
    expect(cut).toEqual({
      length: all.length,
      commands: 3,
      firstTs: 1700000000,
      lastTs: 1700000001,
    });
  });

  it('ends on a command boundary at or under the size limit', () => {
    const limit = ts(1700000000).length + a.length + b.length + 5;
    const cut = cutFrames(all, 0, limit, 'f');
    expect(cut.length).toBe(ts(1700000000).length + a.length + b.length);
    expect(cut.commands).toBe(2);
    expect(cut.lastTs).toBe(1700000000);
  });

  it('makes a chunk of a single command larger than the limit', () => {
    const big = cmd('SET', 'k', 'v'.repeat(1000));
    const cut = cutFrames(Buffer.concat([big, a]), 0, 100, 'f');
    expect(cut.length).toBe(big.length);
    expect(cut.commands).toBe(1);
  });

  it('leaves a torn tail for later, at every byte a write could stop', () => {
    const whole = Buffer.concat([a, b]);
    for (let n = a.length; n < whole.length; n++) {
      expect(cutFrames(whole.subarray(0, n), 0, 1 << 20, 'f').length).toBe(a.length);
    }
    for (let n = 0; n < a.length; n++) {
      expect(cutFrames(whole.subarray(0, n), 0, 1 << 20, 'f').length).toBe(0);
    }
  });

  it('does not take a bulk string that starts with # for an annotation', () => {
    const tricky = cmd('SET', '#TS:5', '#x');
    const cut = cutFrames(tricky, 0, 1 << 20, 'f');
    expect(cut).toEqual({ length: tricky.length, commands: 1, firstTs: null, lastTs: null });
  });

  it('refuses bytes that are not commands with RF_CORRUPT naming the file and the byte', () => {
    const bad = Buffer.concat([a, Buffer.from('hello\r\n')]);
    try {
      cutFrames(bad, 1000, 1 << 20, 'appendonly.aof.1.incr.aof');
      expect.unreachable();
    } catch (err) {
      expect(isRfError(err, 'RF_CORRUPT')).toBe(true);
      if (!isRfError(err)) return;
      expect(err.details).toMatchObject({
        file: 'appendonly.aof.1.incr.aof',
        position: 1000 + a.length,
      });
    }
  });
});
