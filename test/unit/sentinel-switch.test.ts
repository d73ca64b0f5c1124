import { describe, expect, it } from 'vitest';
import { parseSwitchMaster } from '../../src/replication/sentinel.js';

describe('parseSwitchMaster', () => {
  it('reads `<name> <old-ip> <old-port> <new-ip> <new-port>`', () => {
    expect(parseSwitchMaster('cache 10.0.0.5 6379 10.0.0.6 6380')).toEqual({
      masterName: 'cache',
      from: { host: '10.0.0.5', port: 6379 },
      to: { host: '10.0.0.6', port: 6380 },
    });
  });

  it('keeps IPv6 addresses as Sentinel writes them', () => {
    expect(parseSwitchMaster('m ::1 7000 fe80::2 7001')?.to).toEqual({
      host: 'fe80::2',
      port: 7001,
    });
  });

  it('refuses a payload of another shape rather than guessing', () => {
    for (const bad of ['', 'cache', 'cache 10.0.0.5 6379 10.0.0.6', 'm a x b 1', 'm a 1 b 2 extra'])
      expect(parseSwitchMaster(bad), bad).toBeNull();
  });
});
