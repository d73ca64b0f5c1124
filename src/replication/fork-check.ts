import type tls from 'node:tls';
import type { Logger } from '../logger.js';
import { describeEndpoint, type RedisEndpoint } from '../redis-url.js';
import { RedisClient } from '../resp/client.js';
import type { Archive } from '../store/archive.js';
import { forkOf } from '../store/forks.js';
import type { DurableState, TimelineFork } from '../store/types.js';

/**
 * After a full resync under a new replid: the writes of the previous timeline the master never
 * had, as its INFO replication tells (store/forks.ts). Asked on a connection of its own; a master
 * that does not answer leaves the question open rather than failing the session.
 */
export async function promotedFork(
  archive: Archive,
  previous: DurableState,
  options: {
    source: string;
    endpoint: RedisEndpoint;
    timeoutMs: number;
    tlsOptions?: tls.ConnectionOptions;
    log: Logger;
  },
): Promise<TimelineFork | null> {
  const { endpoint } = options;
  let info: Record<string, string>;
  try {
    const client = await RedisClient.connect(endpoint, {
      timeoutMs: options.timeoutMs,
      ...(options.tlsOptions ? { tlsOptions: options.tlsOptions } : {}),
    });
    try {
      info = await client.info('replication');
    } finally {
      await client.close().catch(() => undefined);
    }
  } catch (err) {
    options.log.warn(
      { error: { message: err instanceof Error ? err.message : String(err) } },
      'could not read INFO replication of the new master: no fork check',
    );
    return null;
  }
  return forkOf(archive, options.source, previous, {
    master: describeEndpoint(endpoint),
    replid2: info.master_replid2 ?? '',
    secondReplOffset: Number(info.second_repl_offset ?? -1),
  });
}
