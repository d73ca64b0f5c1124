import { describe, expect, it } from 'vitest';
import { decodeHeader, encodeHeader, parseRoute, paths } from '../../src/aof/wire.js';
import { isRfError } from '../../src/errors.js';
import { parseListen } from '../../src/listen-address.js';

describe('ingest routes', () => {
  it('reads back every path the shipper builds', () => {
    expect(parseRoute(paths.held('cache'))).toEqual({ kind: 'held', source: 'cache' });
    expect(parseRoute(paths.size('cache'))).toEqual({ kind: 'size', source: 'cache' });
    expect(parseRoute(paths.file('cache', 3))).toEqual({
      kind: 'file',
      source: 'cache',
      fileNo: 3,
    });
    expect(parseRoute(paths.base('cache', 4))).toEqual({
      kind: 'base',
      source: 'cache',
      fileNo: 4,
    });
    expect(parseRoute(paths.chunk('cache', 3, 1048576))).toEqual({
      kind: 'chunk',
      source: 'cache',
      fileNo: 3,
      start: 1048576,
    });
    expect(parseRoute(paths.gap('a.b-c', 3, 0))).toEqual({
      kind: 'gap',
      source: 'a.b-c',
      fileNo: 3,
      start: 0,
    });
  });

  it.each([
    '/',
    '/v2/sources/x/aof/held',
    '/v1/sources/x/aof/chunks/1',
    '/v1/sources/x/aof/chunks/01/2',
    '/v1/sources/x/aof/chunks/-1/2',
    '/v1/sources/x/aof/files/1/2',
    '/v1/sources/%E0%A4%A/aof/held',
  ])('refuses %s', (p) => {
    expect(parseRoute(p)).toBeNull();
  });

  it('carries metadata in a header safely, and rejects a header that is not its encoding', () => {
    const meta = { fileNo: 1, file: 'naïve\r\nname', start: 0 };
    expect(decodeHeader(encodeHeader(meta))).toEqual(meta);
    expect(decodeHeader('%%%')).toBeUndefined();
    expect(decodeHeader(undefined)).toBeUndefined();
  });
});

describe('parseListen', () => {
  it.each([
    ['127.0.0.1:7379', { host: '127.0.0.1', port: 7379 }],
    ['[::1]:7379', { host: '::1', port: 7379 }],
    [':7379', { host: '127.0.0.1', port: 7379 }],
    ['0.0.0.0:7379', { host: '0.0.0.0', port: 7379 }],
    ['7379', { host: '127.0.0.1', port: 7379 }],
    ['backup-1:0', { host: 'backup-1', port: 0 }],
  ])('%s', (text, expected) => {
    expect(parseListen('--ingest', text)).toEqual(expected);
  });

  it.each(['', 'host', 'host:99999', '::1:7379', 'host:port'])('refuses %j as RF_USAGE', (text) => {
    expect(() => parseListen('--ingest', text)).toThrow(
      expect.toSatisfy((e) => isRfError(e, 'RF_USAGE')),
    );
  });
});
