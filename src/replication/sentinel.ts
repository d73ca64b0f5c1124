import type tls from 'node:tls';
import { isRfError, RfError } from '../errors.js';
import { describeEndpoint, type RedisEndpoint } from '../redis-url.js';
import { RedisClient, RedisReplyError } from '../resp/client.js';

export interface SentinelAsk {
  timeoutMs: number;
  tlsOptions?: tls.ConnectionOptions;
}

export interface NamedMaster {
  host: string;
  port: number;
  /** The sentinel that answered, `host:port`. */
  sentinel: string;
}

/**
 * The master Sentinel names for `masterName` (SENTINEL GET-MASTER-ADDR-BY-NAME), asking each
 * sentinel in turn until one answers. A name no sentinel knows is the operator's mistake
 * (RF_SENTINEL_UNKNOWN_MASTER); no sentinel answering at all is RF_SENTINEL_UNREACHABLE.
 */
export async function askMaster(
  sentinels: readonly RedisEndpoint[],
  masterName: string,
  options: SentinelAsk,
): Promise<NamedMaster> {
  const asked = sentinels.map(describeEndpoint);
  const failures: Array<{ sentinel: string; code: string; message: string }> = [];
  const unknownAt: string[] = [];
  for (const endpoint of sentinels) {
    const where = describeEndpoint(endpoint);
    let client: RedisClient | null = null;
    try {
      client = await RedisClient.connect(endpoint, {
        timeoutMs: options.timeoutMs,
        ...(options.tlsOptions ? { tlsOptions: options.tlsOptions } : {}),
      });
      const reply = await client.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', masterName);
      if (reply === null) {
        unknownAt.push(where);
        continue;
      }
      const [host, port] = Array.isArray(reply) ? reply.map(String) : [];
      if (host === undefined || port === undefined || !/^\d+$/.test(port))
        throw new RfError('RF_PROTOCOL', `${where} answered ${JSON.stringify(reply)}`);
      return { host, port: Number(port), sentinel: where };
    } catch (err) {
      failures.push({
        sentinel: where,
        code: isRfError(err) ? err.code : err instanceof RedisReplyError ? err.prefix : 'ERR',
        message: err instanceof Error ? err.message : String(err),
      });
    } finally {
      client?.destroy();
    }
  }
  if (unknownAt.length > 0) {
    throw new RfError(
      'RF_SENTINEL_UNKNOWN_MASTER',
      `no sentinel monitors a master named ${JSON.stringify(masterName)} (asked ${asked.join(', ')})`,
      {
        details: { masterName, sentinels: asked, unknownAt, failures },
        hint: 'check --master-name against `SENTINEL MASTERS` on a sentinel (the name in `sentinel monitor <name> …`)',
      },
    );
  }
  throw new RfError(
    'RF_SENTINEL_UNREACHABLE',
    `no sentinel answered for master ${JSON.stringify(masterName)}: ${failures
      .map((f) => `${f.sentinel} (${f.message})`)
      .join('; ')}`,
    {
      details: { masterName, sentinels: asked, failures },
      hint: 'check that redis-server --sentinel runs at each --sentinel address (port 26379 by default), and the sentinel password if it has one',
    },
  );
}

export interface SwitchMaster {
  masterName: string;
  from: { host: string; port: number };
  to: { host: string; port: number };
}

/** The channel on which every sentinel announces a failover's outcome (sentinel.c). */
export const SWITCH_MASTER = '+switch-master';

/** `+switch-master` payload: `<master-name> <old-ip> <old-port> <new-ip> <new-port>`. */
export function parseSwitchMaster(payload: string): SwitchMaster | null {
  const words = payload.trim().split(/\s+/);
  if (words.length !== 5) return null;
  const [masterName, fromHost, fromPort, toHost, toPort] = words as [
    string,
    string,
    string,
    string,
    string,
  ];
  if (!/^\d+$/.test(fromPort) || !/^\d+$/.test(toPort)) return null;
  return {
    masterName,
    from: { host: fromHost, port: Number(fromPort) },
    to: { host: toHost, port: Number(toPort) },
  };
}

export type Role = { role: 'master' } | { role: 'replica'; master: string } | { role: string };

/** What a server says it is (ROLE): only a master's stream is the master's history. */
export async function roleOf(endpoint: RedisEndpoint, options: SentinelAsk): Promise<Role> {
  const client = await RedisClient.connect(endpoint, {
    timeoutMs: options.timeoutMs,
    ...(options.tlsOptions ? { tlsOptions: options.tlsOptions } : {}),
  });
  try {
    const reply = (await client.call('ROLE')) as unknown[];
    const role = String(reply[0]);
    if (role === 'slave') return { role: 'replica', master: `${reply[1]}:${reply[2]}` };
    return { role };
  } finally {
    client.destroy();
  }
}
