import type tls from 'node:tls';
import { RfError } from '../../errors.js';
import { describeEndpoint, type RedisEndpoint } from '../../redis-url.js';
import { RedisClient, RedisReplyError } from '../../resp/client.js';
import type { Command } from '../../resp/encode.js';
import type { EncodedBatch } from './batch.js';
import { ClusterTarget } from './cluster.js';

/** The commands about one key, sent in order to the node that holds it. */
export interface KeyCommands {
  key: Buffer;
  commands: Command[];
}

/**
 * Where --into writes: a standalone Redis (any db) or a Redis Cluster (db 0, routed by slot).
 * Only ordinary commands are used, so a managed Redis or a user without REPLICAOF, PSYNC, SYNC,
 * CONFIG or DEBUG will do.
 */
export interface IntoTarget {
  readonly where: string;
  readonly kind: 'standalone' | 'cluster';
  /** Refuses a db the target does not have, naming it. */
  checkDb(db: number): Promise<void>;
  /** Keys the target holds in db (all masters of a cluster). */
  dbSize(db: number): Promise<number>;
  /** The replies, in order, per key; a Redis error reply is returned, not thrown. */
  send(db: number, items: readonly KeyCommands[]): Promise<unknown[][]>;
  /** A batch's replies, every command's in order (`perKey` per key), errors as values. */
  sendBatch(db: number, batch: EncodedBatch): Promise<unknown[]>;
  /** The longest bulk string each master takes (proto-max-bulk-len): no RESTORE payload may be longer. */
  maxBulk(): Promise<number>;
  /** Every connection the target uses now: where FUNCTION commands go (each master). */
  masters(): Promise<RedisClient[]>;
  close(): Promise<void>;
}

export interface TargetConnection {
  endpoint: RedisEndpoint;
  tlsOptions?: tls.ConnectionOptions;
  timeoutMs: number;
}

/** Redis's default proto-max-bulk-len (config.c), assumed when CONFIG GET is refused. */
const DEFAULT_MAX_BULK = 512 * 1024 * 1024;

/** proto-max-bulk-len of the masters, the smallest; the default where CONFIG is not allowed. */
export async function maxBulkOf(masters: readonly RedisClient[]): Promise<number> {
  let least = Number.POSITIVE_INFINITY;
  for (const m of masters) {
    try {
      const reply = (await m.call('CONFIG', 'GET', 'proto-max-bulk-len')) as unknown[];
      least = Math.min(least, Number(String(reply[1] ?? DEFAULT_MAX_BULK)));
    } catch (err) {
      if (!(err instanceof RedisReplyError)) throw err;
      least = Math.min(least, DEFAULT_MAX_BULK);
    }
  }
  return Number.isFinite(least) ? least : DEFAULT_MAX_BULK;
}

export function connectOptions(c: TargetConnection) {
  return {
    timeoutMs: c.timeoutMs,
    returnBuffers: true,
    name: 'rf-restore-into',
    ...(c.tlsOptions === undefined ? {} : { tlsOptions: c.tlsOptions }),
  };
}

/** The commands of many keys in one pipeline, the replies given back per key. */
export async function pipelineItems(
  client: RedisClient,
  items: readonly KeyCommands[],
): Promise<unknown[][]> {
  const commands: Command[] = [];
  for (const item of items) for (const c of item.commands) commands.push(c);
  const replies = await client.pipeline(commands);
  const out: unknown[][] = new Array(items.length);
  let at = 0;
  for (let i = 0; i < items.length; i++) {
    // Most items are one RESTORE: a one-element array costs less than a slice.
    const n = items[i]!.commands.length;
    out[i] = n === 1 ? [replies[at]] : replies.slice(at, at + n);
    at += n;
  }
  return out;
}

/** Connects and tells a cluster node (cluster_enabled:1) from a standalone instance. */
export async function openTarget(c: TargetConnection): Promise<IntoTarget> {
  const client = await RedisClient.connect(c.endpoint, connectOptions(c));
  try {
    let enabled = false;
    try {
      enabled = (await client.info('cluster')).cluster_enabled === '1';
    } catch (err) {
      // A user that may not run INFO: a managed standalone Redis is the likely case.
      if (!(err instanceof RedisReplyError)) throw err;
    }
    if (enabled) {
      client.destroy();
      return await ClusterTarget.open(c);
    }
    return new StandaloneTarget(client, describeEndpoint(c.endpoint), c.endpoint.db);
  } catch (err) {
    client.destroy();
    throw err;
  }
}

class StandaloneTarget implements IntoTarget {
  readonly kind = 'standalone';
  private db: number;

  constructor(
    private readonly client: RedisClient,
    readonly where: string,
    db: number,
  ) {
    this.db = db;
  }

  async checkDb(db: number): Promise<void> {
    await this.select(db);
  }

  async dbSize(db: number): Promise<number> {
    await this.select(db);
    return Number(await this.client.call('DBSIZE'));
  }

  async send(db: number, items: readonly KeyCommands[]): Promise<unknown[][]> {
    const select = this.select(db);
    const replies = pipelineItems(this.client, items);
    // A connection lost under the SELECT rejects both: report it once.
    replies.catch(() => undefined);
    await select;
    return replies;
  }

  async sendBatch(db: number, batch: EncodedBatch): Promise<unknown[]> {
    const select = this.select(db);
    // The batch goes out as it was written: one write, no copy.
    const replies = this.client.pipelineEncoded(batch.bytes, batch.starts.length - 1);
    replies.catch(() => undefined);
    await select;
    return replies;
  }

  async masters(): Promise<RedisClient[]> {
    return [this.client];
  }

  maxBulk(): Promise<number> {
    return maxBulkOf([this.client]);
  }

  async close(): Promise<void> {
    await this.client.close().catch(() => undefined);
  }

  private async select(db: number): Promise<void> {
    if (db === this.db) return;
    // Pipelined ahead of the commands that follow it on the connection.
    const reply = this.client.call('SELECT', String(db));
    this.db = db;
    try {
      await reply;
    } catch (err) {
      this.db = -1;
      if (err instanceof RedisReplyError) {
        throw new RfError(
          'RF_USAGE',
          `the target ${this.where} has no database ${db}: ${err.message}`,
          {
            details: { target: this.where, db },
            hint: 'leave that --db out, or restore into an instance with that many databases',
          },
        );
      }
      throw err;
    }
  }
}
