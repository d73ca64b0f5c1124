import { crc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { keyProbe } from '../../src/log/query.js';
import { encodeCommand } from '../../src/resp/encode.js';
import { FrameScanner } from '../../src/resp/frames.js';
import {
  KEY_HASHES,
  keyHash,
  keyHashes,
  MAX_PREFIXES,
  prefixHash,
  SEPARATOR,
} from '../../src/store/key-hash.js';
import { KeyIndex, KeyIndexBuilder } from '../../src/store/key-index.js';

/**
 * The key index of one segment: what it lets through and what it rules out. A Bloom filter may
 * let a key through that it was not given (about 1 in 100); it must never rule out one it was.
 */

const args = (...a: string[]) => a.map((x) => Buffer.from(x));

/** The index of these writes (all in `db`), built the way the capture path builds it. */
function fromFrames(db: number, writes: string[][]): KeyIndex {
  const b = new KeyIndexBuilder();
  const scanner = new FrameScanner();
  for (const w of writes) scanner.scan(encodeCommand(w), (f) => b.addFrame(db, f));
  return KeyIndex.decode(b.seal())!;
}

function fromArgs(db: number, writes: string[][]): Buffer {
  const b = new KeyIndexBuilder();
  for (const w of writes) b.addArgs(db, args(...w));
  return b.seal();
}

const probe = (pattern: string) => keyProbe(Buffer.from(pattern))!;

const WRITES = [
  ['SET', 'user:42', 'ann'],
  ['HSET', 'user:42:profile', 'city', 'Paris'],
  ['MSET', 'a', 'user:7', 'b', 'x'],
  ['RENAME', 'old:1', 'new:1'],
  ['ZUNIONSTORE', 'dst', '2', 'z:1', 'z:2', 'WEIGHTS', '1', '2'],
  ['SORT', 'src', 'BY', 'w_*', 'STORE', 'sorted:out'],
  ['MODULE.CMD', 'zzz', 'mod:key'],
];

describe('key index', () => {
  it('is the same built from scanned frames (capture) and from arguments (verify)', () => {
    const b = new KeyIndexBuilder();
    const scanner = new FrameScanner();
    for (const w of WRITES) scanner.scan(encodeCommand(w), (f) => b.addFrame(3, f));
    expect(b.seal().equals(fromArgs(3, WRITES))).toBe(true);
  });

  it('lets through every key argument, each indexed prefix, in its db only', () => {
    const ix = fromFrames(3, WRITES);
    for (const key of ['user:42', 'user:42:profile', 'a', 'b', 'old:1', 'new:1', 'dst', 'z:1']) {
      expect(ix.mayMatch(probe(key), 3), key).toBe(true);
      expect(ix.mayMatch(probe(key)), key).toBe(true);
    }
    for (const p of ['sorted:out', 'src', 'mod:key', 'zzz'])
      expect(ix.mayMatch(probe(p))).toBe(true);
    for (const p of ['user:42:*', 'user:4*', 'user:*', 'user:[0-9]*', 'old:?', 'sorted:*']) {
      expect(ix.mayMatch(probe(p)), p).toBe(true);
    }
    expect(ix.dbs).toEqual([3]);
    expect(ix.mayMatch(probe('user:42'), 0)).toBe(false);
    expect(ix.mayMatch(probe('user:*'), 4)).toBe(false);
  });

  it('rules out keys it was not given, but for about one in a hundred', () => {
    const ix = fromFrames(0, WRITES);
    let through = 0;
    for (let i = 0; i < 2000; i++) if (ix.mayMatch(probe(`absent:${i}`))) through++;
    expect(through).toBeLessThan(100);
    // A value is not a key, nor is a command's keyword.
    expect(ix.mayMatch(probe('ann'))).toBe(false);
    expect(ix.mayMatch(probe('WEIGHTS'))).toBe(false);
  });

  it('a write that names no key but changes every key lets every pattern through', () => {
    const ix = fromFrames(0, [['SET', 'k', 'v'], ['FLUSHDB']]);
    expect(ix.everyKey).toBe(true);
    expect(ix.mayMatch(probe('anything'), 9)).toBe(true);
    expect(fromFrames(0, [['SET', 'k', 'v']]).everyKey).toBe(false);
  });

  it('asks for the key, the longest indexed prefix, or nothing it can use', () => {
    expect(probe('user:42').kind).toBe('key');
    expect(probe('user:42:*')).toEqual(probe('user:42:[a-z]*'));
    expect(probe('user:4*')).toEqual(probe('user:*'));
    // An escaped wildcard is a literal byte.
    expect(probe('a\\*b').kind).toBe('key');
    expect(keyProbe(Buffer.from('*:42'))).toBeNull();
    expect(keyProbe(Buffer.from('ab*'))).toBeNull();
  });

  it('hashes a key and its prefixes in one pass exactly as keyHash and prefixHash do', () => {
    // Separators at every place in a block, keys of every length mod 4, at unaligned places.
    const alphabet = Buffer.from('ab:/.|#{}-_,x0\xff', 'latin1');
    let seed = 12345;
    const next = (n: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return (seed >>> 8) % n;
    };
    const out = new Uint32Array(KEY_HASHES);
    let prefixes = 0;
    for (let t = 0; t < 20_000; t++) {
      const from = next(5);
      const to = from + next(40);
      const buf = Buffer.alloc(to + next(4));
      for (let i = 0; i < buf.length; i++) buf[i] = alphabet[next(alphabet.length)]!;
      const want = [keyHash(buf, from, to)];
      for (let i = from; i < to && want.length <= MAX_PREFIXES; i++)
        if (SEPARATOR[buf[i]!] === 1) want.push(prefixHash(buf, from, i + 1));
      const n = keyHashes(buf, from, to, out);
      expect([...out.subarray(0, n)], buf.toString('latin1', from, to)).toEqual(want);
      prefixes += n - 1;
    }
    expect(prefixes).toBeGreaterThan(50_000);
  });

  it('a damaged index is not used: decode gives null', () => {
    const good = fromArgs(0, WRITES);
    expect(KeyIndex.decode(good)).not.toBeNull();
    const flipped = Buffer.from(good);
    flipped[flipped.length - 1]! ^= 0x10;
    expect(KeyIndex.decode(flipped)).toBeNull();
    expect(KeyIndex.decode(good.subarray(0, 10))).toBeNull();
    // A filter of the wrong length under a matching checksum is refused too.
    const short = Buffer.from(good.subarray(0, good.length - 1));
    short.writeUInt32LE(crc32(short.subarray(8)), 4);
    expect(KeyIndex.decode(short)).toBeNull();
  });
});
