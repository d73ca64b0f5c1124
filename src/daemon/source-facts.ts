import type { Logger } from '../logger.js';
import { describeServer, parseServerInfo } from '../replication/server-info.js';
import { type RedisClient, RedisReplyError } from '../resp/client.js';
import { parseCommandTable } from '../resp/key-specs.js';
import { keys } from '../store/keys.js';
import { json, type Store } from '../store/store.js';
import type { ServerInfo } from '../store/types.js';

/**
 * What rf listen learns about the master when it connects, for later readers of the archive:
 * which server and version it is (INFO server), so a restore writes the layout that version
 * loads (Redis 6 has no appendonlydir) and rf info can say so; and the key specs of its write
 * commands (COMMAND, Redis 7.0+), so rf log --key knows the keys of its modules' and newer
 * commands. Either may be refused (an ACL without +info or +command, a Redis 6 without key
 * specs): then what was recorded before stays, and readers fall back to rf's own knowledge.
 */
export async function recordSourceFacts(
  client: RedisClient,
  store: Store | null,
  source: string,
  log: Logger,
): Promise<ServerInfo | null> {
  const server = await client
    .info('server')
    .then((info) => parseServerInfo(info, Date.now()))
    .catch(() => null);
  if (server !== null) log.info({ server }, `archiving ${describeServer(server)}`);
  if (store === null) return server;
  try {
    const specs = parseCommandTable(await client.call('COMMAND'));
    if (Object.keys(specs).length > 0) {
      await store.batch([
        { type: 'put', key: keys.commandSpecs(source), value: json.encode(specs) },
      ]);
    }
  } catch (err) {
    if (!(err instanceof RedisReplyError)) throw err;
    log.debug({ error: err.message }, 'COMMAND refused; rf log uses its own key table');
  }
  return server;
}
