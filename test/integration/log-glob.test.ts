import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RedisClient } from '../../src/resp/client.js';
import { globMatch, literalKey, literalRuns } from '../../src/resp/glob.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';

/**
 * `rf log --key` must select exactly the keys `KEYS <pattern>` selects on the source. The oracle
 * is a real redis-server: every pattern below is run through KEYS over the same key set, binary
 * keys included, and through the port of stringmatchlen.
 */

const KEYS: Buffer[] = [
  'hello',
  'hallo',
  'hxllo',
  'hllo',
  'heeeello',
  'Hello',
  'user:1',
  'user:10',
  'user:1:profile',
  'User:1',
  'a*b',
  'a?b',
  'a[b',
  'a]b',
  'a\\b',
  'a^b',
  'a-b',
  'ab',
  'abc',
  'x]y',
  '[',
  ']',
  '\\',
  '*',
  'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaab',
].map((k) => Buffer.from(k));
KEYS.push(Buffer.from([0x00, 0x61]), Buffer.from([0xff, 0xfe, 0x2a]), Buffer.from('é:1'));

const PATTERNS = [
  '*',
  'h?llo',
  'h*llo',
  'h[ae]llo',
  'h[^e]llo',
  'h[a-b]llo',
  'h[b-a]llo',
  'h[x-]llo',
  'h[-x]llo',
  'user:?',
  'user:*',
  'user:*:profile',
  '*:1',
  '*1*',
  '**',
  'a\\*b',
  'a\\?b',
  'a\\[b',
  'a[\\]]b',
  'a[\\\\]b',
  'a[]]b',
  'a[^]b',
  'a[',
  'a[b',
  'a[^',
  '[',
  '\\',
  'a\\',
  '\\*',
  'x]y',
  'a*',
  '*b',
  'a*a*a*a*a*a*a*b',
  'a*a*a*a*a*a*a*c',
  '[a-c]*',
  '[\\x00]a',
  '\xff*',
  'é*',
  '?',
  '',
];

let server: RedisServer;
let client: RedisClient;

beforeAll(async () => {
  server = await startRedis();
  client = await server.client({ returnBuffers: true });
  for (const k of KEYS) await client.call('SET', k, '1');
});

afterAll(async () => {
  await server?.stop();
});

describe('Redis glob semantics, checked against KEYS on a real redis-server', () => {
  for (const pattern of PATTERNS) {
    it(`KEYS ${JSON.stringify(pattern)}`, async () => {
      const p = Buffer.from(pattern, pattern.startsWith('\xff') ? 'latin1' : 'utf8');
      const expected = ((await client.call('KEYS', p)) as Buffer[])
        .map((b) => b.toString('hex'))
        .sort();
      const actual = KEYS.filter((k) => globMatch(p, k))
        .map((b) => b.toString('hex'))
        .sort();
      expect(actual).toEqual(expected);
      // The prefilter must never drop a key the pattern matches.
      for (const k of KEYS.filter((key) => globMatch(p, key))) {
        for (const run of literalRuns(p)) expect(k.includes(run)).toBe(true);
      }
    });
  }
});

describe('literal patterns', () => {
  it('a pattern without wildcards is one key, with escapes removed', () => {
    expect(literalKey(Buffer.from('user:42'))?.toString()).toBe('user:42');
    expect(literalKey(Buffer.from('a\\*b'))?.toString()).toBe('a*b');
    expect(literalKey(Buffer.from('user:*'))).toBeNull();
    expect(literalKey(Buffer.from('h[ae]llo'))).toBeNull();
  });

  it('literal runs are the byte strings between wildcards', () => {
    expect(literalRuns(Buffer.from('user:*:profile')).map(String)).toEqual(['user:', ':profile']);
    expect(literalRuns(Buffer.from('h[ae]llo?x')).map(String)).toEqual(['h', 'llo', 'x']);
    expect(literalRuns(Buffer.from('a\\*b*')).map(String)).toEqual(['a*b']);
  });
});
