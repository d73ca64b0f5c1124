import type { ListenConfig } from '../../src/daemon/listener.js';
import type { RedisServer } from './redis.js';

/** A Listener's config for a test master and store: fast flushes, no schedules unless given. */
export function listenConfig(
  master: RedisServer,
  store: string,
  more: Partial<ListenConfig> = {},
): ListenConfig {
  return {
    sourceUrl: master.url,
    endpoint: { host: master.host, port: master.port, db: 0, tls: false },
    store,
    name: 'default',
    connectTimeoutMs: 5000,
    readTimeoutMs: 60_000,
    maxSegmentBytes: 1024 * 1024,
    flushIntervalMs: 20,
    ackIntervalMs: 1000,
    listeningPort: 0,
    baseEveryMs: null,
    retainMs: null,
    ...more,
  };
}
