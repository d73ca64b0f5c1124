import { describe, expect, it } from 'vitest';
import { isRfError } from '../../src/errors.js';
import { chooseLayout, parseLayout } from '../../src/restore/layout.js';
import type { ServerInfo } from '../../src/store/types.js';

const server = (redisVersion: string, name = 'redis'): ServerInfo => ({
  name,
  version: redisVersion,
  redisVersion,
  mode: 'standalone',
  seenAt: 0,
});

describe('chooseLayout', () => {
  it('follows the base: RDB 9 is Redis 6, RDB 10 and later Redis 7', () => {
    const none = { aofFiles: null, server: null };
    expect(chooseLayout({ ...none, rdbVersion: 9 }).layout).toBe('redis6');
    expect(chooseLayout({ ...none, rdbVersion: 10 }).layout).toBe('redis7');
    expect(chooseLayout({ ...none, rdbVersion: 12 }).reason).toContain('RDB version 12');
  });

  it('without an RDB base, the AOF record, then the server recorded at capture', () => {
    expect(chooseLayout({ rdbVersion: null, aofFiles: 'single', server: null }).layout).toBe(
      'redis6',
    );
    const bySource = chooseLayout({ rdbVersion: null, aofFiles: null, server: server('6.2.16') });
    expect(bySource).toEqual({ layout: 'redis6', reason: 'the source is redis 6.2.16' });
    // Valkey 8 reports redis_version 7.2.4: a Redis 7 layout.
    const valkey = { ...server('7.2.4', 'valkey'), version: '8.0.1' };
    expect(chooseLayout({ rdbVersion: null, aofFiles: null, server: valkey }).layout).toBe(
      'redis7',
    );
    expect(chooseLayout({ rdbVersion: null, aofFiles: null, server: null }).layout).toBe('redis7');
  });

  it('an override wins over the archive', () => {
    const evidence = { rdbVersion: 12, aofFiles: null, server: null };
    expect(chooseLayout(evidence, 'redis6')).toEqual({
      layout: 'redis6',
      reason: '--layout redis6',
    });
  });

  it('parseLayout refuses anything else with RF_USAGE, naming the choices', () => {
    expect(parseLayout('redis6')).toBe('redis6');
    try {
      parseLayout('redis8');
      expect.unreachable();
    } catch (err) {
      expect(isRfError(err, 'RF_USAGE')).toBe(true);
      expect((err as Error).message).toContain('"redis8"');
    }
  });
});
