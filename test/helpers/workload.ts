import type { RedisClient } from '../../src/resp/client.js';
import { hasFeature } from './redis-bin.js';

/**
 * A workload over every data type a master can hold, with the forms the replication stream
 * rewrites (relative expires, INCRBYFLOAT, SPOP, XREADGROUP, scripts and functions), MULTI/EXEC,
 * several dbs, SWAPDB, FLUSHDB, RENAME, COPY and MOVE. Each phase is deterministic given its number.
 */
export const LIBRARY = `#!lua name=rflib
redis.register_function('bump', function(keys, args)
  redis.call('INCRBY', keys[1], args[1])
  return redis.call('HSET', keys[2], 'last', args[1])
end)`;

const HOUR = 3_600_000;

export async function workloadPhase(c: RedisClient, phase: number): Promise<void> {
  const p = String(phase);
  const k = (name: string) => `${name}:${p}`;
  await c.call('SELECT', '0');
  // strings, counters, relative and absolute expires
  await c.call('SET', k('str'), `value-${p}`);
  await c.call('APPEND', k('str'), '-more');
  await c.call('INCRBY', 'counter', String(phase * 7));
  await c.call('INCRBYFLOAT', 'float', '1.25');
  await c.call('SET', k('ttl-rel'), 'x', 'EX', '3600');
  await c.call('SET', k('ttl-abs'), 'y', 'PXAT', String(Date.now() + 2 * HOUR));
  await c.call('EXPIRE', k('str'), '7200');
  await c.call('SETEX', k('setex'), '5000', 'z');
  // a key that expires during the phase: its deletion reaches the stream as a DEL
  await c.call('SET', k('short'), 'gone', 'PX', '50');
  // lists, hashes, sets, sorted sets
  await c.call('RPUSH', 'list', `a${p}`, `b${p}`, `c${p}`);
  await c.call('LPOP', 'list');
  await c.call('LINSERT', 'list', 'BEFORE', `c${p}`, `x${p}`);
  await c.call('HSET', 'hash', `f${p}`, p, 'shared', p);
  await c.call('HINCRBY', 'hash', 'n', '3');
  await c.call('SADD', 'set', `m${p}`, `n${p}`, `o${p}`);
  await c.call('SPOP', 'set');
  await c.call('ZADD', 'zset', String(phase), `z${p}`, String(phase * 2.5), `y${p}`);
  await c.call('ZINCRBY', 'zset', '0.5', `z${p}`);
  // streams with a consumer group: XREADGROUP reaches the stream as XCLAIM
  await c.call('XADD', 'stream', `${phase}-1`, 'field', p);
  await c.call('XADD', 'stream', `${phase}-2`, 'field', `${p}b`);
  if (phase === 0) await c.call('XGROUP', 'CREATE', 'stream', 'grp', '0');
  if (phase === 2) await c.call('XGROUP', 'CREATE', 'stream', 'grp2', '$');
  await c.call(
    'XREADGROUP',
    'GROUP',
    'grp',
    `consumer${p}`,
    'COUNT',
    '1',
    'STREAMS',
    'stream',
    '>',
  );
  await c.call('XACK', 'stream', 'grp', `${phase}-1`);
  // HyperLogLog, bitmaps, geo
  await c.call('PFADD', 'hll', `e${p}`, `f${p}`, `g${p}`);
  await c.call('SETBIT', 'bits', String(phase * 3), '1');
  await c.call('BITOP', 'OR', 'bits2', 'bits', 'bits');
  await c.call('GEOADD', 'geo', String(2 + phase / 10), '48.85', `place${p}`);
  await c.call(
    'GEOSEARCHSTORE',
    'geo-near',
    'geo',
    'FROMLONLAT',
    '2.3',
    '48.85',
    'BYRADIUS',
    '500',
    'km',
    'ASC',
  );
  // scripts and functions: their effects come wrapped in MULTI/EXEC
  await c.call(
    'EVAL',
    "redis.call('SET', KEYS[1], ARGV[1]); return redis.call('INCR', KEYS[2])",
    '2',
    k('lua'),
    'counter',
    p,
  );
  // Loaded before capture (so it is in the base) and replaced later (so it is in the stream).
  // (Redis 6 has no functions: there the EVAL above is the only script.)
  if (hasFeature('functions')) {
    if (phase === 0 || phase === 2) await c.call('FUNCTION', 'LOAD', 'REPLACE', LIBRARY);
    await c.call('FCALL', 'bump', '2', 'counter', 'hash', p);
  }
  // an explicit transaction that crosses dbs
  await c.call('MULTI');
  await c.call('SET', k('tx'), 'in-tx');
  await c.call('SELECT', '1');
  await c.call('SET', k('tx-db1'), 'in-tx');
  await c.call('SELECT', '0');
  await c.call('EXEC');
  // keyspace moves: RENAME, COPY, MOVE, SWAPDB, FLUSHDB
  await c.call('SET', k('to-rename'), 'r');
  await c.call('RENAME', k('to-rename'), k('renamed'));
  await c.call('COPY', k('renamed'), k('copied'), 'DB', '2');
  await c.call('SET', k('to-move'), 'm');
  await c.call('MOVE', k('to-move'), '3');
  await c.call('SELECT', '4');
  await c.call('SET', k('db4'), 'four');
  await c.call('SWAPDB', '4', '5');
  await c.call('SELECT', '6');
  await c.call('SET', k('flushed'), 'soon gone');
  await c.call('FLUSHDB');
  await c.call('SET', k('after-flush'), 'stays');
  await c.call('SELECT', '0');
  // let the short key expire, and touch it so the master deletes (and propagates) it now
  await new Promise((r) => setTimeout(r, 80));
  await c.call('GET', k('short'));
}
