/**
 * The hashes of the key index (key-index.ts): MurmurHash3 x86_32 over a byte range, so a key is
 * hashed where it lies in a captured frame, with no Buffer or string made for it. Written here
 * rather than taken from a package: the npm Bloom filter and hash packages hash strings, and a
 * string per key is the cost the capture path avoids.
 */

const C1 = 0xcc9e2d51;
const C2 = 0x1b873593;

/** MurmurHash3's finalizer: every input bit affects every output bit. */
export function fmix32(h0: number): number {
  let h = h0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** MurmurHash3 x86_32 of buf[from, to). */
export function murmur3(buf: Uint8Array, from: number, to: number, seed: number): number {
  let h = seed | 0;
  const length = to - from;
  const body = from + (length & ~3);
  let i = from;
  for (; i < body; i += 4) {
    let k = buf[i]! | (buf[i + 1]! << 8) | (buf[i + 2]! << 16) | (buf[i + 3]! << 24);
    k = Math.imul(k, C1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, C2);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  const tail = length & 3;
  if (tail > 0) {
    let k = 0;
    if (tail === 3) k ^= buf[i + 2]! << 16;
    if (tail >= 2) k ^= buf[i + 1]! << 8;
    k ^= buf[i]!;
    k = Math.imul(k, C1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, C2);
    h ^= k;
  }
  return fmix32(h ^ length);
}

/** Whole keys and key prefixes are hashed apart: the key `user:` is not the prefix `user:`. */
const KEY_SEED = 0x2f6b1c3d;
const PREFIX_SEED = 0x5a17e9b3;

export function keyHash(buf: Uint8Array, from: number, to: number): number {
  return murmur3(buf, from, to, KEY_SEED);
}

export function prefixHash(buf: Uint8Array, from: number, to: number): number {
  return murmur3(buf, from, to, PREFIX_SEED);
}

/** A key or prefix hash within one db: the index keeps keys by db. The hash is mixed already. */
export function inDb(hash: number, db: number): number {
  return (hash ^ Math.imul(db + 1, 0x9e3779b1)) >>> 0;
}

/**
 * The bytes after which a key's prefix is indexed: the separators of Redis key names
 * (`user:42:profile`, `tenant/7/cart`, `{user42}.cart`). A pattern `user:42:*` is looked up as
 * the prefix `user:42:`; `user:4*` as `user:`.
 */
export const SEPARATOR = new Uint8Array(256);
for (const c of ':/.|#{}-_,') SEPARATOR[c.charCodeAt(0)] = 1;

/** Prefixes indexed per key, from the start: a key made of many short parts costs no more. */
export const MAX_PREFIXES = 6;

/**
 * The longest indexed prefix of a literal that every matching key starts with: the end of the
 * last separator among the first MAX_PREFIXES, as the index counts them in any key that
 * starts with `literal` (key-index.ts). 0 when there is none (the index cannot narrow such a pattern).
 */
export function indexedPrefixLength(literal: Uint8Array): number {
  let end = 0;
  let n = 0;
  for (let i = 0; i < literal.length && n < MAX_PREFIXES; i++) {
    if (SEPARATOR[literal[i]!] === 1) {
      end = i + 1;
      n++;
    }
  }
  return end;
}
