import { describe, expect, it } from 'vitest';
import { KeyMatcher } from '../../src/log/query.js';
import { bufferArgs, keyArgs } from '../../src/resp/key-args.js';
import { keysBySpecs, parseCommandTable } from '../../src/resp/key-specs.js';

const b = (...a: string[]) => a.map((x) => Buffer.from(x));

/** A key spec as COMMAND returns it over RESP2: flat name/value arrays. */
const spec = (begin: unknown[], find: unknown[], flags = ['RW', 'update']) => [
  'flags',
  flags,
  'begin_search',
  begin,
  'find_keys',
  find,
];
const index = (i: number) => ['type', 'index', 'spec', ['index', i]];
const keyword = (k: string, from: number) => [
  'type',
  'keyword',
  'spec',
  ['keyword', k, 'startfrom', from],
];
const range = (last: number, step = 1, limit = 0) => [
  'type',
  'range',
  'spec',
  ['lastkey', last, 'keystep', step, 'limit', limit],
];
const keynum = (idx: number, first: number, step = 1) => [
  'type',
  'keynum',
  'spec',
  ['keynumidx', idx, 'firstkey', first, 'keystep', step],
];
const command = (name: string, flags: string[], specs: unknown[], subcommands: unknown[] = []) => [
  name,
  -2,
  flags,
  1,
  1,
  1,
  [],
  [],
  specs,
  subcommands,
];

const table = parseCommandTable([
  // A module command rf's own table has never heard of.
  command('json.set', ['write', 'denyoom'], [spec(index(1), range(0))]),
  command('get', ['readonly', 'fast'], [spec(index(1), range(0), ['RO', 'access'])]),
  command('xgroup', [], [], [command('xgroup|create', ['write'], [spec(index(2), range(0))])]),
  command('mset', ['write'], [spec(index(1), range(-1, 2))]),
  command(
    'zunionstore',
    ['write'],
    [spec(index(1), range(0), ['OW']), spec(index(2), keynum(0, 1))],
  ),
  command(
    'georadius',
    ['write'],
    [
      spec(index(1), range(0), ['RO']),
      spec(keyword('STORE', 6), range(0), ['OW']),
      spec(keyword('STOREDIST', 6), range(0), ['OW']),
    ],
  ),
  command('eval', ['noscript'], [spec(index(2), keynum(0, 1))]),
  command('odd', ['write'], [['flags', [], 'begin_search', ['type', 'unknown', 'spec', []]]]),
]);

describe('key specs from COMMAND', () => {
  it('keeps the commands that can write, subcommands by container|sub, and drops read-only ones', () => {
    expect(Object.keys(table).sort()).toEqual(
      ['eval', 'georadius', 'json.set', 'mset', 'odd', 'xgroup|create', 'zunionstore'].sort(),
    );
    expect(table.odd).toBeNull();
  });

  it('finds keys by index, range, key count and keyword, as db.c getKeysUsingKeySpecs does', () => {
    const keys = (name: string, ...argv: string[]) =>
      keysBySpecs(table[name]!, bufferArgs(b(name, ...argv)));
    expect(keys('mset', 'a', '1', 'b', '2')).toEqual([1, 3]);
    expect(keys('zunionstore', 'd', '2', 'a', 'b', 'WEIGHTS', '1', '2')).toEqual([1, 3, 4]);
    expect(keys('georadius', 'g', '0', '0', '1', 'km', 'STORE', 'd')).toEqual([1, 7]);
    expect(keys('georadius', 'g', '0', '0', '1', 'km')).toEqual([1]);
    expect(keys('eval', 'return 1', '1', 'k', 'argv')).toEqual([3]);
    // A key count past the arguments does not fit: the caller falls back.
    expect(keys('eval', 'return 1', '5', 'k')).toBeNull();
  });

  it("rf log --key follows the master's specs for a command its own table does not know", () => {
    const args = b('json.set', 'doc:1', '$', 'doc:2');
    expect(keyArgs('json.set', args)).toEqual({ kind: 'unknown' });
    expect(keyArgs('json.set', args, table)).toEqual({ kind: 'keys', indices: [1] });
    const matcher = new KeyMatcher(Buffer.from('doc:2'), table);
    expect(matcher.matches('json.set', args)).toBe(false);
    expect(new KeyMatcher(Buffer.from('doc:2')).matches('json.set', args)).toBe(true);
    expect(keyArgs('xgroup', b('xgroup', 'create', 's', 'g', '$'), table)).toEqual({
      kind: 'keys',
      indices: [2],
    });
  });
});
