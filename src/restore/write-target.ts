import { randomBytes } from 'node:crypto';
import type net from 'node:net';
import type tls from 'node:tls';
import { errnoCode, RfError } from '../errors.js';
import type { Logger } from '../logger.js';
import { describeEndpoint, type RedisEndpoint } from '../redis-url.js';
import { RedisClient, RedisReplyError } from '../resp/client.js';
import { type Served, serveTarget } from './serve-target.js';

export interface TargetOptions {
  endpoint: RedisEndpoint;
  tlsOptions?: tls.ConnectionOptions;
  /** The address the target connects back to; by default the one rf reaches it from. */
  serveHost?: string;
  /** Longest wait with no progress from the target (its RDB load shows none until it ends). */
  idleTimeoutMs: number;
  log: Logger;
  /**
   * Run on the target once it holds every byte, while it is still a replica of rf: a replica
   * expires no key of its own (it waits for the master's DEL, see expireIfNeeded in db.c), so
   * what it reads or saves here is the dataset exactly as sent.
   */
  beforeDetach?: (client: RedisClient) => Promise<void>;
}

/** Refuses a target that holds keys, or that is a replica: rf loads only empty, standalone instances. */
export async function checkTarget(client: RedisClient): Promise<void> {
  const where = describeEndpoint(client.endpoint);
  const keyspace = await client.info('keyspace');
  const dbs = Object.entries(keyspace).filter(([k]) => /^db\d+$/.test(k));
  if (dbs.length > 0) {
    const keys = keyCount(keyspace);
    throw new RfError('RF_TARGET_NOT_EMPTY', `the target ${where} already holds ${keys} keys`, {
      details: { target: where, keyspace: Object.fromEntries(dbs) },
      hint: 'restore into an empty instance (a new redis-server), or use --out DIR and boot from it',
    });
  }
  const replication = await client.info('replication');
  if (replication.role === 'slave') {
    throw new RfError(
      'RF_TARGET',
      `the target ${where} is a replica of ${replication.master_host}:${replication.master_port}`,
      {
        details: { target: where },
        hint: 'restore into a standalone instance: run REPLICAOF NO ONE on it first, or start a new one',
      },
    );
  }
}

/**
 * Loads a base and the writes after it into a running, empty Redis, at replication speed: rf
 * serves them as a master would (+FULLRESYNC, the RDB, then the commands), waits until the
 * target acknowledges the last byte, and detaches it with REPLICAOF NO ONE. The target keeps
 * exactly the data it was sent, with no load of its own to slow it down.
 *
 * Only the target is served: rf sets a one-time `masterauth` on it (and clears `masteruser`,
 * so it sends AUTH <password>), and serves nothing to a connection that does not present it.
 * Success is what the target itself reports (its link to rf up, its offset at the last byte),
 * never what a peer on the port claims. Whatever fails, the target is put back (REPLICAOF NO
 * ONE, its own masterauth and masteruser) and the error says so.
 */
export async function loadTarget(
  options: TargetOptions,
  base: { bytes: number; chunks: AsyncIterable<Buffer> },
  incr: AsyncIterable<Buffer>,
): Promise<{ streamBytes: number; keys: number }> {
  const { endpoint, log } = options;
  const where = describeEndpoint(endpoint);
  const client = await RedisClient.connect(endpoint, {
    // --target-timeout bounds every wait on the target, its first answers included.
    timeoutMs: Math.min(10_000, options.idleTimeoutMs),
    ...(options.tlsOptions ? { tlsOptions: options.tlsOptions } : {}),
  });
  let served: Served | null = null;
  let attached = false;
  let saved: SavedAuth | null = null;
  try {
    await checkTarget(client);
    const host = options.serveHost ?? client.localAddress ?? '127.0.0.1';
    const password = randomBytes(32).toString('hex');
    served = serveTarget(base, incr, {
      password,
      idleTimeoutMs: options.idleTimeoutMs,
      where,
      log,
    });
    await listen(served.server, host, options.serveHost !== undefined);
    const { port } = served.server.address() as net.AddressInfo;
    saved = await setMasterAuth(client, password, where);
    log.info({ target: where, serve: `${host}:${port}` }, 'target attaching as a replica of rf');
    await client.call('REPLICAOF', host, String(port));
    attached = true;
    await connectedBack(served, options.idleTimeoutMs, where, `${host}:${port}`, client);
    const result = await served.done;
    await checkLoaded(client, where, host, port, result.streamBytes);
    await options.beforeDetach?.(client);
    await client.call('REPLICAOF', 'NO', 'ONE');
    attached = false;
    served.close();
    const keys = keyCount(await client.info('keyspace'));
    if (served.refused() > 0) {
      log.warn(
        { refused: served.refused() },
        'the restore port refused connections that were not the target',
      );
    }
    return { ...result, keys };
  } catch (err) {
    if (attached || saved !== null) {
      const back = await putBack(client, attached, saved);
      attached = false;
      saved = null;
      log.warn({ target: where, putBack: back }, 'restore failed: target put back');
      throw withPutBack(err, where, back);
    }
    throw err;
  } finally {
    if (attached) await client.call('REPLICAOF', 'NO', 'ONE').catch(() => undefined);
    if (saved !== null) await restoreMasterAuth(client, saved).catch(() => undefined);
    served?.close();
    await client.close().catch(() => undefined);
  }
}

/** The target's own masterauth and masteruser, put back when the restore ends. */
interface SavedAuth {
  masterauth: string;
  masteruser: string;
}

async function configGet(client: RedisClient, name: string): Promise<string> {
  const reply = await client.call('CONFIG', 'GET', name);
  const value = Array.isArray(reply) ? reply[1] : undefined;
  return value === undefined || value === null ? '' : String(value);
}

/** Sets the one-time password the target must present to rf's port; its own values first. */
async function setMasterAuth(
  client: RedisClient,
  password: string,
  where: string,
): Promise<SavedAuth> {
  try {
    const saved = {
      masterauth: await configGet(client, 'masterauth'),
      masteruser: await configGet(client, 'masteruser'),
    };
    // An empty masteruser is none (EMPTY_STRING_IS_NULL in redis/src/config.c): plain AUTH.
    await configSet(client, ['masterauth', password, 'masteruser', '']);
    return saved;
  } catch (err) {
    throw new RfError(
      'RF_TARGET',
      `rf could not set a one-time masterauth on the target ${where}: ${(err as Error).message}`,
      {
        details: { target: where },
        hint: 'rf restore --target authenticates the target with CONFIG SET masterauth: connect as a user allowed +config|get and +config|set, or restore with --out DIR and boot from it',
        cause: err,
      },
    );
  }
}

async function restoreMasterAuth(client: RedisClient, saved: SavedAuth): Promise<void> {
  await configSet(client, ['masterauth', saved.masterauth, 'masteruser', saved.masteruser]);
}

/**
 * CONFIG SET of several parameters at once, atomically where the server can (Redis 7.0+);
 * Redis 6 takes one per call and answers the multi form with "wrong number of arguments".
 */
async function configSet(client: RedisClient, pairs: string[]): Promise<void> {
  try {
    await client.call('CONFIG', 'SET', ...pairs);
  } catch (err) {
    if (!(err instanceof RedisReplyError) || !/wrong number of arguments/i.test(err.message))
      throw err;
    for (let i = 0; i + 1 < pairs.length; i += 2) {
      await client.call('CONFIG', 'SET', pairs[i]!, pairs[i + 1]!);
    }
  }
}

/** Binds the restore port; an address that is not this host's is the operator's to fix. */
async function listen(server: net.Server, host: string, explicit: boolean): Promise<void> {
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    const code = errnoCode(err);
    throw new RfError(
      explicit ? 'RF_USAGE' : 'RF_TARGET',
      `rf cannot listen for the target on ${host}${explicit ? ' (--serve-host)' : ''}: ${code === 'EADDRNOTAVAIL' ? 'not an address of this host' : code === 'ENOTFOUND' || code === 'EAI_AGAIN' ? 'the name does not resolve' : (err as Error).message}`,
      {
        details: { serveHost: host, errno: code },
        hint: 'give --serve-host an address of this host that the target can reach (`ip -brief address` lists them)',
        cause: err,
      },
    );
  }
}

/** Waits for the target to authenticate and ask for PSYNC, at most `ms`. */
async function connectedBack(
  served: Served,
  ms: number,
  where: string,
  serve: string,
  client: RedisClient,
): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), ms);
  });
  try {
    const first = await Promise.race([served.attached, served.done, timedOut]);
    if (first !== 'timeout') return;
  } finally {
    clearTimeout(timer);
  }
  const replication = await client.info('replication').catch(() => ({}) as Record<string, string>);
  throw new RfError(
    'RF_TIMEOUT',
    `the target ${where} did not connect back to rf at ${serve} within ${ms} ms`,
    {
      details: {
        target: where,
        serve,
        masterLinkStatus: replication.master_link_status,
        refusedConnections: served.refused(),
      },
      hint: `the target must reach ${serve}: check the firewall and routing from the target to this host, or give --serve-host an address of this host it can reach; the target's log says what it tried`,
    },
  );
}

/** Success as the target reports it: linked to rf's port, at the last byte served. */
async function checkLoaded(
  client: RedisClient,
  where: string,
  host: string,
  port: number,
  streamBytes: number,
): Promise<void> {
  const r = await client.info('replication');
  const offset = Number(r.slave_repl_offset);
  const linked =
    r.role === 'slave' &&
    r.master_host === host &&
    r.master_port === String(port) &&
    r.master_link_status === 'up';
  if (linked && offset >= streamBytes) return;
  throw new RfError(
    'RF_TARGET',
    `the target ${where} does not report the restore loaded (role ${r.role}, master ${r.master_host}:${r.master_port}, link ${r.master_link_status}, offset ${r.slave_repl_offset} of ${streamBytes})`,
    {
      details: {
        target: where,
        serve: `${host}:${port}`,
        offset: r.slave_repl_offset,
        expected: streamBytes,
      },
      hint: "check the target's log, then restore again into an empty instance",
    },
  );
}

function keyCount(keyspace: Record<string, string>): number {
  return Object.entries(keyspace)
    .filter(([k]) => /^db\d+$/.test(k))
    .reduce((n, [, v]) => n + Number(/keys=(\d+)/.exec(v)?.[1] ?? 0), 0);
}

/** Detaches the target and gives it back its own settings; says what was done. */
async function putBack(
  client: RedisClient,
  attached: boolean,
  saved: SavedAuth | null,
): Promise<string> {
  const done: string[] = [];
  try {
    if (attached) {
      await client.call('REPLICAOF', 'NO', 'ONE');
      done.push('REPLICAOF NO ONE');
    }
    if (saved !== null) {
      await restoreMasterAuth(client, saved);
      done.push('its masterauth and masteruser restored');
    }
    return done.join(', ');
  } catch (err) {
    return `${done.length > 0 ? `${done.join(', ')}, then ` : ''}failed: ${(err as Error).message}; run REPLICAOF NO ONE on it`;
  }
}

function withPutBack(err: unknown, where: string, back: string): unknown {
  if (!(err instanceof RfError)) return err;
  return new RfError(err.code, err.message, {
    details: { ...err.details, targetPutBack: back },
    hint: `${err.hint === undefined ? '' : `${err.hint}; `}the target ${where} was put back (${back})`,
    cause: err.cause ?? err,
  });
}
