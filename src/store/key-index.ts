import { crc32 } from 'node:zlib';
import type { ScannedFrame } from '../resp/frames.js';
import { keyArgsOf, keyIsFirstArg } from '../resp/key-args.js';
import { CommandState, frameKind, Kind, nameOf, parseArgs } from './commands.js';
import { fmix32, inDb, KEY_HASHES, keyHashes } from './key-hash.js';
import type { Entry } from './types.js';

/**
 * The key index: per segment, a Bloom filter of the keys its writes touch, by db, and of their
 * prefixes up to each separator (key-hash.ts), so `rf log --key K` and `--key 'prefix*'` read
 * only the segments that can hold a match. A filter never misses a key it was given; about one
 * segment in a hundred that does not hold the key passes it too, and is read and found empty.
 * Exact results, then, either way.
 *
 * Keys come from key-args.ts's own table, which follows Redis's key specs. A write of a command
 * the table does not know has every argument indexed: a superset of the keys any key spec the
 * master records for it names (resp/key-specs.ts), and of what `rf log` matches without one. A
 * write that changes every key (FLUSHDB, FLUSHALL, SWAPDB) marks the segment as matching every
 * pattern.
 *
 *   u8 version | u8 flags (1: every key) | u8 probes | u8 0 | u32 CRC-32 of what follows
 *   | u32 bits | u32 dbs | dbs x u32 db | bits / 8 bytes of filter
 *
 * The checksum lets a reader tell a damaged index from a filter that says no: a damaged one is
 * not used (the segment is read), and `rf verify` rebuilds it.
 */

const VERSION = 1;
const HEADER = 16;
const EVERY_KEY = 1;
/**
 * Bits per key and probes: a false positive rate of about 0.9% (seven probes would make it 0.8%,
 * for 40% more work on the capture path).
 */
const BITS_PER_KEY = 10;
const PROBES = 5;

/**
 * A 32-bit hash mapped onto [0, bits) by multiplying rather than dividing (Lemire's fast range),
 * in floating point: the same in every process to the bit, and cheaper than `%`.
 */
const bitOf = (h: number, bits: number) => Math.floor((h / 4294967296) * bits);

/** The second hash of double hashing (Kirsch and Mitzenmacher), odd so it cycles every bit. */
const step = (h: number) => fmix32(h ^ 0x27d4eb2f) | 1;

/** A command name as a stream sends it, lower-cased, and where its keys are. */
interface Named {
  bytes: Buffer;
  name: string;
  /** keyIsFirstArg(name). */
  firstArg: boolean;
}

/** The keys of one segment's writes, collected as 32-bit hashes without repeats. */
export class KeyIndexBuilder {
  private table = new Uint32Array(1 << 12);
  private size = 0;
  private dbs = new Set<number>();
  /** The db of the last key added: most writes go to the db of the one before. */
  private lastDb = -1;
  private everyKey = false;
  /** keyHashes' answer for the key being added. */
  private readonly hashes = new Uint32Array(KEY_HASHES);
  /** The frame being read, for key-args.ts's count and keyword reads. */
  private frame: ScannedFrame | null = null;
  private readonly frameArgs: { length: number; latin1(i: number): string } = {
    length: 0,
    latin1: (i) => {
      const f = this.frame!;
      const at = f.pos + f.offsets[2 * i]!;
      return f.buf.toString('latin1', at, at + f.offsets[2 * i + 1]!);
    },
  };
  /**
   * Lower-cased names by their bytes as sent (streams repeat a handful of commands), and whether
   * the command's one key is its first argument.
   */
  private readonly names: Named[] = [];

  /** A write as the capture path scanned it: keys are hashed where they lie. */
  addFrame(db: number, f: ScannedFrame): void {
    if (f.argc === 0) return;
    const { buf, pos, offsets } = f;
    const named = this.nameAt(buf, f.nameStart, f.nameLength);
    if (named.firstArg) {
      // keyArgsOf's answer for these commands, without asking it for every write.
      if (f.argc > 1) this.addKey(db, buf, pos + offsets[2]!, pos + offsets[2]! + offsets[3]!);
      return;
    }
    this.frame = f;
    this.frameArgs.length = f.argc;
    const spec = keyArgsOf(named.name, this.frameArgs);
    this.frame = null;
    switch (spec.kind) {
      case 'every-key':
        this.everyKey = true;
        return;
      case 'keys':
        for (let k = 0; k < spec.indices.length; k++) {
          const i = spec.indices[k]!;
          const at = pos + offsets[2 * i]!;
          this.addKey(db, buf, at, at + offsets[2 * i + 1]!);
        }
        return;
      case 'unknown':
        for (let i = 1; i < f.argc; i++) {
          const at = pos + offsets[2 * i]!;
          this.addKey(db, buf, at, at + offsets[2 * i + 1]!);
        }
        return;
    }
  }

  /** A write as its arguments (args[0] is the name). */
  addArgs(db: number, args: readonly Buffer[]): void {
    if (args.length === 0) return;
    const spec = keyArgsOf(nameOf(args[0]), {
      length: args.length,
      latin1: (i) => args[i]?.toString('latin1') ?? '',
    });
    if (spec.kind === 'every-key') {
      this.everyKey = true;
      return;
    }
    const at = spec.kind === 'keys' ? spec.indices : args.map((_, i) => i).slice(1);
    for (const i of at) this.addKey(db, args[i]!, 0, args[i]!.length);
  }

  private nameAt(buf: Buffer, start: number, length: number): Named {
    // Compared byte by byte here: a native Buffer.compare per write costs more than the loop.
    next: for (const n of this.names) {
      const b = n.bytes;
      if (b.length !== length) continue;
      for (let i = 0; i < length; i++) if (b[i] !== buf[start + i]) continue next;
      return n;
    }
    const end = start + length;
    const name = buf.toString('latin1', start, end).toLowerCase();
    const named = {
      bytes: Buffer.from(buf.subarray(start, end)),
      name,
      firstArg: keyIsFirstArg(name),
    };
    if (this.names.length < 32) this.names.push(named);
    return named;
  }

  private addKey(db: number, buf: Uint8Array, from: number, to: number): void {
    if (db !== this.lastDb) {
      this.dbs.add(db);
      this.lastDb = db;
    }
    // The key and each indexed prefix: the key up to each of its first MAX_PREFIXES separators.
    const hashes = this.hashes;
    const n = keyHashes(buf, from, to, hashes);
    for (let j = 0; j < n; j++) this.insert(inDb(hashes[j]!, db));
  }

  /** Open addressing; 0 marks a free slot, so the hash 0 is kept as 1. */
  private insert(hash: number): void {
    const h = hash === 0 ? 1 : hash;
    let table = this.table;
    let mask = table.length - 1;
    let i = h & mask;
    for (;;) {
      const at = table[i]!;
      if (at === h) return;
      if (at === 0) break;
      i = (i + 1) & mask;
    }
    table[i] = h;
    this.size++;
    if (2 * this.size > table.length) {
      const old = table;
      table = new Uint32Array(old.length * 2);
      mask = table.length - 1;
      for (const v of old) {
        if (v === 0) continue;
        let j = v & mask;
        while (table[j] !== 0) j = (j + 1) & mask;
        table[j] = v;
      }
      this.table = table;
    }
  }

  /** The stored index of what was added since the last call; the builder starts again empty. */
  seal(): Buffer {
    const bits = Math.max(64, Math.ceil((this.size * BITS_PER_KEY) / 8) * 8);
    const dbs = [...this.dbs].sort((a, b) => a - b);
    const filterAt = HEADER + 4 * dbs.length;
    const out = Buffer.alloc(filterAt + bits / 8);
    out.writeUInt8(VERSION, 0);
    out.writeUInt8(this.everyKey ? EVERY_KEY : 0, 1);
    out.writeUInt8(PROBES, 2);
    out.writeUInt32LE(bits, 8);
    out.writeUInt32LE(dbs.length, 12);
    for (const [i, db] of dbs.entries()) out.writeUInt32LE(db, HEADER + 4 * i);
    const table = this.table;
    for (let t = 0; t < table.length; t++) {
      const h = table[t]!;
      if (h === 0) continue;
      const s = step(h);
      for (let p = 0; p < PROBES; p++) {
        const bit = bitOf((h + Math.imul(p, s)) >>> 0, bits);
        out[filterAt + (bit >>> 3)]! |= 1 << (bit & 7);
      }
    }
    out.writeUInt32LE(crc32(out.subarray(8)), 4);
    this.reset();
    return out;
  }

  reset(): void {
    if (this.size > 0) {
      // A table a burst of keys grew goes back to its first size rather than stay large.
      if (this.table.length > 1 << 16) this.table = new Uint32Array(1 << 12);
      else this.table.fill(0);
    }
    this.size = 0;
    this.dbs.clear();
    this.lastDb = -1;
    this.everyKey = false;
  }
}

/**
 * The index of stored entries, as the writer would have made it: verify compares it with the
 * stored one, and rebuilds a missing or damaged one with it.
 */
export function indexEntries(
  entries: readonly Entry[],
  start: { db: number; multiAt: number | null },
): Buffer {
  const builder = new KeyIndexBuilder();
  const state = new CommandState(start.db, start.multiAt);
  for (const e of entries) {
    const kind = frameKind(e.bytes);
    if (kind === Kind.select) state.applyKind(kind, parseArgs(e.bytes), e.offset);
    else if (kind === Kind.write) builder.addArgs(state.db, parseArgs(e.bytes));
  }
  return builder.seal();
}

/** What `rf log` asks the index: one key, or one prefix, in a db or in any. */
export interface KeyProbe {
  kind: 'key' | 'prefix';
  /** keyHash or prefixHash of the bytes, before the db is mixed in. */
  hash: number;
}

/** A stored index, read; null when it is damaged or of an unknown version (then unused). */
export class KeyIndex {
  private constructor(
    private readonly buf: Buffer,
    readonly everyKey: boolean,
    readonly dbs: readonly number[],
    private readonly bits: number,
    private readonly probes: number,
    private readonly filterAt: number,
  ) {}

  static decode(buf: Buffer): KeyIndex | null {
    if (buf.length < HEADER || buf.readUInt8(0) !== VERSION) return null;
    if (buf.readUInt32LE(4) !== crc32(buf.subarray(8))) return null;
    const bits = buf.readUInt32LE(8);
    const n = buf.readUInt32LE(12);
    const filterAt = HEADER + 4 * n;
    if (bits === 0 || bits % 8 !== 0 || filterAt + bits / 8 !== buf.length) return null;
    const dbs: number[] = [];
    for (let i = 0; i < n; i++) dbs.push(buf.readUInt32LE(HEADER + 4 * i));
    const flags = buf.readUInt8(1);
    return new KeyIndex(buf, (flags & EVERY_KEY) !== 0, dbs, bits, buf.readUInt8(2), filterAt);
  }

  /** False only when no write of the segment can match: it need not be read. */
  mayMatch(probe: KeyProbe, db?: number): boolean {
    if (this.everyKey) return true;
    for (const d of this.dbs) {
      if (db !== undefined && d !== db) continue;
      if (this.has(inDb(probe.hash, d))) return true;
    }
    return false;
  }

  private has(hash: number): boolean {
    const h = hash === 0 ? 1 : hash;
    const s = step(h);
    for (let p = 0; p < this.probes; p++) {
      const bit = bitOf((h + Math.imul(p, s)) >>> 0, this.bits);
      if ((this.buf[this.filterAt + (bit >>> 3)]! & (1 << (bit & 7))) === 0) return false;
    }
    return true;
  }
}
