import { describe, expect, it } from 'vitest';
import { lzfDecompress } from '../../src/rdb/lzf.js';
import { encodeCommand, encodeCommands } from '../../src/resp/encode.js';
import { TOUCHED_MAX_KEYS, touchedKeys } from '../../src/restore/into/touched.js';

async function* replay(...commands: string[][]): AsyncIterable<Buffer> {
  // Cut mid-command: the scanner must carry a command over chunks.
  const bytes = Buffer.concat(commands.map((c) => encodeCommand(c)));
  const half = Math.floor(bytes.length / 2);
  yield bytes.subarray(0, half);
  yield bytes.subarray(half);
}

const names = (dbs: Map<number, Set<string>>) =>
  Object.fromEntries([...dbs].map(([db, s]) => [db, [...s].sort()]));

describe('the keys a replay names', () => {
  it('follows SELECT, transactions, MOVE and COPY … DB, and ignores keyless commands', async () => {
    const touched = await touchedKeys(
      replay(
        ['SELECT', '0'],
        ['MULTI'],
        ['SET', 'a', '1'],
        ['RENAME', 'b', 'c'],
        ['EXEC'],
        ['PUBLISH', 'ch', 'x'],
        ['FUNCTION', 'LOAD', 'code'],
        ['MOVE', 'd', '5'],
        ['COPY', 'e', 'f', 'DB', '7', 'REPLACE'],
        ['SELECT', '2'],
        ['SUNIONSTORE', 'g', 'h', 'i'],
      ),
    );
    expect(touched.kind).toBe('keys');
    if (touched.kind !== 'keys') return;
    expect(names(touched.dbs)).toEqual({
      0: ['a', 'b', 'c', 'd', 'e', 'f'],
      2: ['g', 'h', 'i'],
      5: ['d'],
      7: ['f'],
    });
    expect(touched.count).toBe(11);
  });

  it('gives up on commands that change or read keys they do not name', async () => {
    for (const command of [
      ['FLUSHALL'],
      ['FLUSHDB'],
      ['SWAPDB', '0', '1'],
      ['EVAL', 'return 1', '0'],
      ['FCALL', 'f', '1', 'k'],
      ['SORT', 'k', 'BY', 'w_*', 'STORE', 'd'],
      ['NOT-A-COMMAND', 'k'],
    ]) {
      const touched = await touchedKeys(replay(['SET', 'a', '1'], command));
      expect(touched, command[0]).toEqual({
        kind: 'unknown',
        why: expect.stringContaining(command[0]!),
      });
    }
  });

  it('gives up when the keys are too many to hold', { timeout: 60_000 }, async () => {
    async function* sets(): AsyncIterable<Buffer> {
      const all = Array.from({ length: TOUCHED_MAX_KEYS + 1 }, (_, i) => ['SET', `k${i}`, '1']);
      for (let i = 0; i < all.length; i += 10_000) yield encodeCommands(all.slice(i, i + 10_000));
    }
    const touched = await touchedKeys(sets());
    expect(touched).toEqual({ kind: 'unknown', why: expect.stringContaining('more than') });
  });
});

describe('LZF', () => {
  it('expands literals and back references, overlapping ones included', () => {
    // "abc" as a literal run, then a reference 3 back of length 6: "abcabcabc".
    const input = Buffer.from([2, 0x61, 0x62, 0x63, (4 << 5) | 0, 2]);
    expect(lzfDecompress(input, 9)?.toString()).toBe('abcabcabc');
    // A reference with the long-length byte: 7 + 3 + 2 = 12 bytes of "a" after the first.
    const long = Buffer.from([0, 0x61, (7 << 5) | 0, 3, 0]);
    expect(lzfDecompress(long, 13)?.toString()).toBe('a'.repeat(13));
  });

  it('refuses input that does not expand to the length the RDB gives', () => {
    expect(lzfDecompress(Buffer.from([2, 0x61, 0x62, 0x63]), 4)).toBeNull();
    expect(lzfDecompress(Buffer.from([0, 0x61, (1 << 5) | 0, 5]), 4)).toBeNull();
  });
});
