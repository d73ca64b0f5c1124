/**
 * Which arguments of a stored write are key names, so `rf log --key` answers "who changed this
 * key" without matching values that merely look like it. The positions follow the key specs of
 * the Redis 7 command table (redis/redis src/commands/*.json); the forms the stream rewrites
 * (PEXPIREAT, SET … PXAT, SET … KEEPTTL, DEL, XCLAIM) are ordinary entries here.
 *
 * The master's own key specs, recorded at capture (key-specs.ts), come first; this table
 * serves archives without them. A command neither knows is matched on every argument: a
 * false match is shown, a missed write is not.
 */
import { type CommandKeySpecs, keysBySpecs, specsFor } from './key-specs.js';

/** Where the keys are. */
type KeySpec =
  | { kind: 'first' }
  /** args[1] and args[2]. */
  | { kind: 'two' }
  /** Every argument from `from` on, except the last `skipLast`. */
  | { kind: 'rest'; from: number; skipLast?: number }
  /** args[1], args[3], …: MSET key value key value. */
  | { kind: 'pairs' }
  /** A count at args[at], then that many keys; `also` lists keys before the count. */
  | { kind: 'counted'; at: number; also?: number[] }
  /** args[1], plus the argument after each of `after` (SORT … STORE dest). */
  | { kind: 'first-and-after'; after: string[] }
  /** args[2]: XGROUP CREATE key … */
  | { kind: 'second' }
  /** No key, but every key of the db changes (FLUSHDB, FLUSHALL, SWAPDB). */
  | { kind: 'every-key' }
  /** No key and no key changes (FUNCTION LOAD, SCRIPT FLUSH). */
  | { kind: 'none' };

const FIRST: KeySpec = { kind: 'first' };

const single = [
  // strings
  'set',
  'setnx',
  'setex',
  'psetex',
  'append',
  'setrange',
  'incr',
  'decr',
  'incrby',
  'decrby',
  'incrbyfloat',
  'getset',
  'getdel',
  'getex',
  'setbit',
  'bitfield',
  'lcs',
  // keyspace
  'expire',
  'pexpire',
  'expireat',
  'pexpireat',
  'persist',
  'move',
  'restore',
  'restore-asking',
  // lists
  'lpush',
  'rpush',
  'lpushx',
  'rpushx',
  'linsert',
  'lset',
  'lrem',
  'ltrim',
  'lpop',
  'rpop',
  // sets
  'sadd',
  'srem',
  'spop',
  // hashes
  'hset',
  'hsetnx',
  'hmset',
  'hdel',
  'hincrby',
  'hincrbyfloat',
  'hexpire',
  'hpexpire',
  'hexpireat',
  'hpexpireat',
  'hpersist',
  // sorted sets
  'zadd',
  'zincrby',
  'zrem',
  'zremrangebyscore',
  'zremrangebyrank',
  'zremrangebylex',
  'zpopmin',
  'zpopmax',
  // streams
  'xadd',
  'xdel',
  'xtrim',
  'xack',
  'xclaim',
  'xautoclaim',
  'xsetid',
  // hyperloglog, geo
  'pfadd',
  'geoadd',
];

const SPECS = new Map<string, KeySpec>([
  ...single.map((name) => [name, FIRST] as const),
  ['del', { kind: 'rest', from: 1 }],
  ['unlink', { kind: 'rest', from: 1 }],
  ['touch', { kind: 'rest', from: 1 }],
  ['pfmerge', { kind: 'rest', from: 1 }],
  ['pfcount', { kind: 'rest', from: 1 }],
  ['sinterstore', { kind: 'rest', from: 1 }],
  ['sunionstore', { kind: 'rest', from: 1 }],
  ['sdiffstore', { kind: 'rest', from: 1 }],
  ['bitop', { kind: 'rest', from: 2 }],
  ['blpop', { kind: 'rest', from: 1, skipLast: 1 }],
  ['brpop', { kind: 'rest', from: 1, skipLast: 1 }],
  ['bzpopmin', { kind: 'rest', from: 1, skipLast: 1 }],
  ['bzpopmax', { kind: 'rest', from: 1, skipLast: 1 }],
  ['rename', { kind: 'two' }],
  ['renamenx', { kind: 'two' }],
  ['copy', { kind: 'two' }],
  ['smove', { kind: 'two' }],
  ['lmove', { kind: 'two' }],
  ['blmove', { kind: 'two' }],
  ['rpoplpush', { kind: 'two' }],
  ['brpoplpush', { kind: 'two' }],
  ['zrangestore', { kind: 'two' }],
  ['geosearchstore', { kind: 'two' }],
  ['mset', { kind: 'pairs' }],
  ['msetnx', { kind: 'pairs' }],
  ['zunionstore', { kind: 'counted', at: 2, also: [1] }],
  ['zinterstore', { kind: 'counted', at: 2, also: [1] }],
  ['zdiffstore', { kind: 'counted', at: 2, also: [1] }],
  ['lmpop', { kind: 'counted', at: 1 }],
  ['zmpop', { kind: 'counted', at: 1 }],
  ['blmpop', { kind: 'counted', at: 2 }],
  ['bzmpop', { kind: 'counted', at: 2 }],
  ['eval', { kind: 'counted', at: 2 }],
  ['evalsha', { kind: 'counted', at: 2 }],
  ['fcall', { kind: 'counted', at: 2 }],
  ['sort', { kind: 'first-and-after', after: ['store'] }],
  ['georadius', { kind: 'first-and-after', after: ['store', 'storedist'] }],
  ['georadiusbymember', { kind: 'first-and-after', after: ['store', 'storedist'] }],
  ['xgroup', { kind: 'second' }],
  ['flushdb', { kind: 'every-key' }],
  ['flushall', { kind: 'every-key' }],
  ['swapdb', { kind: 'every-key' }],
  ['function', { kind: 'none' }],
  ['script', { kind: 'none' }],
]);

export type KeyArgs =
  /** These argument indices are keys. */
  | { kind: 'keys'; indices: readonly number[] }
  /** The command changes every key of a db (or of all of them). */
  | { kind: 'every-key' }
  /** A command not in the table: every argument counts. */
  | { kind: 'unknown' };

/**
 * Whether the table puts a write's one key at args[1] (SET, INCR, HSET, LPUSH, ZADD…): then
 * `keyArgsOf` without recorded specs answers that for any arguments, and the capture path,
 * which asks for every write, need not ask.
 */
export function keyIsFirstArg(name: string): boolean {
  return SPECS.get(name)?.kind === 'first';
}

/** FLUSHDB, FLUSHALL, SWAPDB: they change keys without naming any. */
export function changesEveryKey(name: string): boolean {
  return SPECS.get(name)?.kind === 'every-key';
}

/**
 * The arguments of a write as key extraction reads them: how many there are, and the text of
 * one (read only for a count or a keyword such as STORE). The capture path implements it over
 * the scanner's argument table, so a write's keys are found without a Buffer per argument.
 */
export interface ArgList {
  readonly length: number;
  latin1(i: number): string;
}

/**
 * The key arguments of a write, by its lower-cased name and its arguments (args[0] is the
 * name): by the key specs the master gave for it when they were recorded at capture, else by
 * the table above.
 */
export function keyArgs(
  name: string,
  args: readonly Buffer[],
  recorded?: CommandKeySpecs,
): KeyArgs {
  return keyArgsOf(name, bufferArgs(args), recorded);
}

/** An ArgList over decoded arguments. */
export function bufferArgs(args: readonly Buffer[]): ArgList {
  return { length: args.length, latin1: (i) => args[i]?.toString('latin1') ?? '' };
}

/** keyArgs over any argument list. */
export function keyArgsOf(name: string, args: ArgList, recorded?: CommandKeySpecs): KeyArgs {
  const spec = SPECS.get(name);
  if (spec?.kind === 'every-key') return { kind: 'every-key' };
  const specs = recorded === undefined ? undefined : specsFor(recorded, name, args);
  if (specs !== undefined && specs !== null) {
    const indices = keysBySpecs(specs, args);
    if (indices !== null) return { kind: 'keys', indices };
  }
  if (spec === undefined) return { kind: 'unknown' };
  const n = args.length;
  const upTo = (from: number, to: number) => {
    const out: number[] = [];
    for (let i = from; i < Math.min(to, n); i++) out.push(i);
    return out;
  };
  switch (spec.kind) {
    case 'first':
      return n > 1 ? FIRST_KEY : NO_KEYS;
    case 'second':
      return { kind: 'keys', indices: upTo(2, 3) };
    case 'two':
      return { kind: 'keys', indices: upTo(1, 3) };
    case 'rest':
      return { kind: 'keys', indices: upTo(spec.from, n - (spec.skipLast ?? 0)) };
    case 'pairs': {
      const out: number[] = [];
      for (let i = 1; i < n; i += 2) out.push(i);
      return { kind: 'keys', indices: out };
    }
    case 'counted': {
      const count = Number.parseInt(spec.at < n ? args.latin1(spec.at) : '', 10);
      if (!Number.isInteger(count) || count < 0) return { kind: 'unknown' };
      return {
        kind: 'keys',
        indices: [...(spec.also ?? []), ...upTo(spec.at + 1, spec.at + 1 + count)],
      };
    }
    case 'first-and-after': {
      const out = upTo(1, 2);
      for (let i = 2; i < n - 1; i++) {
        if (spec.after.includes(args.latin1(i).toLowerCase())) out.push(i + 1);
      }
      return { kind: 'keys', indices: out };
    }
    case 'none':
      return NO_KEYS;
  }
}

/** Shared answers for the commonest shapes: every write captured asks for one. Never mutated. */
const FIRST_KEY: KeyArgs = { kind: 'keys', indices: [1] };
const NO_KEYS: KeyArgs = { kind: 'keys', indices: [] };
