import { describe, expect, it } from 'vitest';
import { isRfError } from '../../src/errors.js';
import { describeEndpoint, parseRedisUrl, redactUrl } from '../../src/redis-url.js';

const noEnv = {};

describe('parseRedisUrl', () => {
  it('defaults port 6379, db 0, no credentials, no TLS', () => {
    expect(parseRedisUrl('redis://cache.internal', noEnv)).toEqual({
      host: 'cache.internal',
      port: 6379,
      db: 0,
      tls: false,
    });
  });

  it('reads user, password, port and db', () => {
    expect(parseRedisUrl('redis://rf:s3cret@10.0.0.5:6380/3', noEnv)).toEqual({
      host: '10.0.0.5',
      port: 6380,
      db: 3,
      username: 'rf',
      password: 's3cret',
      tls: false,
    });
  });

  it('takes a password alone, for the default user', () => {
    const endpoint = parseRedisUrl('redis://:pw@h:7000', noEnv);
    expect(endpoint.password).toBe('pw');
    expect(endpoint.username).toBeUndefined();
  });

  it('percent-decodes user and password', () => {
    const endpoint = parseRedisUrl('redis://us%40er:p%40ss%3Aw%2Fd@h', noEnv);
    expect(endpoint.username).toBe('us@er');
    expect(endpoint.password).toBe('p@ss:w/d');
  });

  it('uses rediss:// for TLS', () => {
    expect(parseRedisUrl('rediss://h:6390', noEnv)).toMatchObject({
      host: 'h',
      port: 6390,
      tls: true,
    });
  });

  it('strips the brackets of an IPv6 host', () => {
    expect(parseRedisUrl('redis://[::1]:6390/1', noEnv)).toMatchObject({
      host: '::1',
      port: 6390,
      db: 1,
    });
    expect(parseRedisUrl('redis://[fe80::1]', noEnv)).toMatchObject({
      host: 'fe80::1',
      port: 6379,
    });
  });

  it('takes the password from RF_PASSWORD when the URL has none, and the URL wins otherwise', () => {
    expect(parseRedisUrl('redis://h', { RF_PASSWORD: 'env-pw' }).password).toBe('env-pw');
    expect(parseRedisUrl('redis://rf@h', { RF_PASSWORD: 'env-pw' })).toMatchObject({
      username: 'rf',
      password: 'env-pw',
    });
    expect(parseRedisUrl('redis://:url-pw@h', { RF_PASSWORD: 'env-pw' }).password).toBe('url-pw');
    expect(parseRedisUrl('redis://h', { RF_PASSWORD: '' }).password).toBeUndefined();
  });

  const bad: Array<[string, string, RegExp]> = [
    ['no scheme', 'localhost:6379', /scheme/],
    ['another scheme', 'http://h:6379', /scheme/],
    ['not a URL at all', 'redis//h', /not a URL/],
    ['port 0', 'redis://h:0', /port 0/],
    ['port out of range', 'redis://h:70000', /port 70000/],
    ['a db that is not a number', 'redis://h/cache', /database "cache"/],
    ['a db with a sign', 'redis://h/-1', /database/],
    ['a query string', 'redis://h/0?timeout=5', /query/],
    ['no host', 'redis://:6379', /not a URL/],
    ['a user without a password', 'redis://rf@h', /no password/],
  ];
  for (const [what, url, message] of bad) {
    it(`rejects ${what} with RF_BAD_URL and the accepted form`, () => {
      let caught: unknown;
      try {
        parseRedisUrl(url, noEnv);
      } catch (err) {
        caught = err;
      }
      expect(isRfError(caught, 'RF_BAD_URL')).toBe(true);
      if (!isRfError(caught)) return;
      expect(caught.message).toMatch(message);
      expect(caught.hint).toMatch(/redis:\/\/|RF_PASSWORD/);
    });
  }

  it('never echoes the password of a URL it rejects', () => {
    for (const url of ['redis://u:hunter2@h:99999', 'redis://u:hunter2@h/x', 'redis://hunter2@h']) {
      try {
        parseRedisUrl(url, noEnv);
        throw new Error(`${url} was accepted`);
      } catch (err) {
        if (!isRfError(err, 'RF_BAD_URL')) throw err;
        expect(JSON.stringify(err.toJSON())).not.toContain('hunter2');
        expect(err.cause).toBeUndefined();
      }
    }
  });
});

describe('redactUrl', () => {
  it('replaces the password with ***', () => {
    expect(redactUrl('redis://rf:s3cret@h:6379/2')).toBe('redis://rf:***@h:6379/2');
    expect(redactUrl('rediss://:s3cret@h')).toBe('rediss://:***@h');
  });

  it('hides a password holding an unencoded @ entirely', () => {
    expect(redactUrl('redis://rf:p@ss@h:1')).toBe('redis://rf:***@h:1');
  });

  it('leaves URLs without a password alone, and does not need a valid URL', () => {
    expect(redactUrl('redis://h:6379')).toBe('redis://h:6379');
    expect(redactUrl('redis://rf@h')).toBe('redis://rf@h');
    expect(redactUrl('not a url')).toBe('not a url');
    expect(redactUrl('redis://u:pw@h:99999')).toBe('redis://u:***@h:99999');
  });
});

describe('describeEndpoint', () => {
  it('gives host:port, with brackets for IPv6', () => {
    expect(describeEndpoint({ host: '10.0.0.1', port: 6380 })).toBe('10.0.0.1:6380');
    expect(describeEndpoint({ host: '::1', port: 6380 })).toBe('[::1]:6380');
  });
});
