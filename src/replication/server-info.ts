import type { ServerInfo } from '../store/types.js';

/**
 * What a master is, from its INFO server section. Valkey 8 answers `server_name:valkey` and
 * `valkey_version:8.0.1`, and keeps `redis_version:7.2.4` for clients that gate on it
 * (valkey src/server.c genValkeyInfoString); Redis has neither field.
 */
export function parseServerInfo(info: Record<string, string>, seenAt: number): ServerInfo {
  const redisVersion = info.redis_version ?? 'unknown';
  const name = info.server_name ?? 'redis';
  const version =
    name === 'valkey' && info.valkey_version !== undefined ? info.valkey_version : redisVersion;
  return { name, version, redisVersion, mode: info.redis_mode ?? 'standalone', seenAt };
}

/** The major version of the Redis protocol level the server speaks: 6 for 6.2.16, 7 for Valkey 8. */
export function redisMajor(server: ServerInfo): number {
  const major = Number(server.redisVersion.split('.')[0]);
  return Number.isInteger(major) ? major : 0;
}

/** `redis 7.4.1`, `valkey 8.0.1`: how logs and rf info name a server. */
export function describeServer(server: ServerInfo): string {
  return `${server.name} ${server.version}${server.mode === 'standalone' ? '' : ` (${server.mode})`}`;
}
