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

/** MurmurHash3's mixing of one 4-byte block (or of the tail bytes), before it enters the hash. */
function mixBlock(k0: number): number {
  let k = Math.imul(k0, C1);
  k = (k << 15) | (k >>> 17);
  return Math.imul(k, C2);
}

/** MurmurHash3's step of the hash by one mixed block. */
function absorb(h0: number, k: number): number {
  let h = h0 ^ k;
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

/** MurmurHash3 x86_32 of buf[from, to). */
export function murmur3(buf: Uint8Array, from: number, to: number, seed: number): number {
  let h = seed | 0;
  const length = to - from;
  const body = from + (length & ~3);
  let i = from;
  for (; i < body; i += 4) {
    h = absorb(
      h,
      mixBlock(buf[i]! | (buf[i + 1]! << 8) | (buf[i + 2]! << 16) | (buf[i + 3]! << 24)),
    );
  }
  const tail = length & 3;
  if (tail > 0) {
    let k = 0;
    if (tail === 3) k ^= buf[i + 2]! << 16;
    if (tail >= 2) k ^= buf[i + 1]! << 8;
    k ^= buf[i]!;
    h ^= mixBlock(k);
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

/** Room `keyHashes` needs: the key's hash and one per indexed prefix. */
export const KEY_HASHES = 1 + MAX_PREFIXES;

/**
 * What the key index stores for the key buf[from, to), in one pass over its bytes: its keyHash
 * in out[0], then the prefixHash of the key up to each of its first MAX_PREFIXES separators;
 * returns how many hashes it wrote. MurmurHash3 mixes each block the same way whatever the seed,
 * so the key's hash and its prefixes' share that work, and a prefix's hash is the prefix hash
 * so far finished with the bytes of its last, partial block. The results are those of keyHash
 * and prefixHash, to the bit.
 */
export function keyHashes(buf: Uint8Array, from: number, to: number, out: Uint32Array): number {
  let hk = KEY_SEED | 0;
  let hp = PREFIX_SEED | 0;
  let n = 1;
  const length = to - from;
  const body = from + (length & ~3);
  let i = from;
  for (; i < body; i += 4) {
    const b0 = buf[i]!;
    const b1 = buf[i + 1]!;
    const b2 = buf[i + 2]!;
    const b3 = buf[i + 3]!;
    const at = i - from;
    if (n <= MAX_PREFIXES && (SEPARATOR[b0]! | SEPARATOR[b1]! | SEPARATOR[b2]!) !== 0) {
      if (SEPARATOR[b0] === 1) out[n++] = fmix32(hp ^ mixBlock(b0) ^ (at + 1));
      if (SEPARATOR[b1] === 1 && n <= MAX_PREFIXES)
        out[n++] = fmix32(hp ^ mixBlock(b0 | (b1 << 8)) ^ (at + 2));
      if (SEPARATOR[b2] === 1 && n <= MAX_PREFIXES)
        out[n++] = fmix32(hp ^ mixBlock(b0 | (b1 << 8) | (b2 << 16)) ^ (at + 3));
    }
    const k = mixBlock(b0 | (b1 << 8) | (b2 << 16) | (b3 << 24));
    hk = absorb(hk, k);
    hp = absorb(hp, k);
    if (SEPARATOR[b3] === 1 && n <= MAX_PREFIXES) out[n++] = fmix32(hp ^ (at + 4));
  }
  const tail = length & 3;
  if (tail > 0) {
    const at = i - from;
    let k = 0;
    for (let j = 0; j < tail; j++) {
      const b = buf[i + j]!;
      k |= b << (8 * j);
      if (SEPARATOR[b] === 1 && n <= MAX_PREFIXES)
        out[n++] = fmix32(hp ^ mixBlock(k) ^ (at + j + 1));
    }
    hk ^= mixBlock(k);
  }
  out[0] = fmix32(hk ^ length);
  return n;
}
