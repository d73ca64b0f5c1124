import calculateSlot from 'cluster-key-slot';
import { RfError } from '../../errors.js';
import { describeEndpoint } from '../../redis-url.js';
import { RedisClient, RedisReplyError } from '../../resp/client.js';
import type { CommandArg } from '../../resp/encode.js';
import type { EncodedBatch } from './batch.js';
import {
  connectOptions,
  type IntoTarget,
  type KeyCommands,
  maxBulkOf,
  pipelineItems,
  type TargetConnection,
} from './target.js';

const SLOTS = 16384;
/** Redirections one key may follow before rf gives up on it (a cluster that keeps moving). */
const MAX_REDIRECTS = 5;

function isRedirect(r: unknown): r is RedisReplyError {
  return r instanceof RedisReplyError && (r.prefix === 'MOVED' || r.prefix === 'ASK');
}

/** Slot ranges nobody serves, as `[from, to]` pairs. */
export function uncoveredSlots(owner: ReadonlyArray<string | undefined>): Array<[number, number]> {
  const gaps: Array<[number, number]> = [];
  for (let s = 0; s < SLOTS; s++) {
    if (owner[s] !== undefined) continue;
    const last = gaps[gaps.length - 1];
    if (last !== undefined && last[1] === s - 1) last[1] = s;
    else gaps.push([s, s]);
  }
  return gaps;
}

/**
 * A Redis Cluster as a restore target: each key goes to the master that owns its slot (CRC16
 * of the key or its {hash tag}, cluster.c keyHashSlot), found with CLUSTER SLOTS; a MOVED reply
 * updates the map and resends, an ASK reply resends once to the named node after ASKING
 * (cluster.c getNodeByQuery). Only db 0 exists in cluster mode.
 */
export class ClusterTarget implements IntoTarget {
  readonly kind = 'cluster';
  private owner: Array<string | undefined> = new Array(SLOTS);
  private readonly nodes = new Map<string, Promise<RedisClient>>();

  private constructor(
    private readonly conn: TargetConnection,
    readonly where: string,
  ) {}

  static async open(conn: TargetConnection): Promise<ClusterTarget> {
    const target = new ClusterTarget(conn, `the cluster at ${describeEndpoint(conn.endpoint)}`);
    try {
      const seed = describeEndpoint(conn.endpoint);
      await target.refresh(await target.node(seed));
      return target;
    } catch (err) {
      await target.close();
      throw err;
    }
  }

  async checkDb(db: number): Promise<void> {
    if (db !== 0) {
      throw new RfError(
        'RF_USAGE',
        `${this.where} has only db 0, and the selection holds db ${db}`,
        {
          details: { target: this.where, db },
          hint: 'select db 0 alone with --db 0, or restore into a standalone instance',
        },
      );
    }
  }

  async dbSize(db: number): Promise<number> {
    await this.checkDb(db);
    const sizes = await Promise.all(
      (await this.masters()).map(async (c) => Number(await c.call('DBSIZE'))),
    );
    return sizes.reduce((a, b) => a + b, 0);
  }

  async send(db: number, items: readonly KeyCommands[]): Promise<unknown[][]> {
    await this.checkDb(db);
    // One pipeline per master; a key redirected (MOVED, ASK) is sent again on its own.
    const byNode = new Map<string, number[]>();
    items.forEach((item, i) => {
      const address = this.owner[calculateSlot(item.key)]!;
      const list = byNode.get(address);
      if (list === undefined) byNode.set(address, [i]);
      else list.push(i);
    });
    const out: unknown[][] = new Array(items.length);
    await Promise.all(
      [...byNode].map(async ([address, indices]) => {
        const replies = await pipelineItems(
          await this.node(address),
          indices.map((i) => items[i]!),
        );
        indices.forEach((i, j) => {
          out[i] = replies[j]!;
        });
      }),
    );
    await Promise.all(
      items.map(async (item, i) => {
        if (out[i]!.some(isRedirect)) out[i] = await this.sendOne(item);
      }),
    );
    return out;
  }

  /** Each key's commands routed by its slot, as send() does with argument lists. */
  async sendBatch(db: number, batch: EncodedBatch): Promise<unknown[]> {
    const { bytes, keys, perKey, starts } = batch;
    const items = keys.map((key, i) => {
      const commands: Buffer[] = [];
      for (let c = i * perKey; c < (i + 1) * perKey; c++)
        commands.push(bytes.subarray(starts[c], starts[c + 1]));
      return { key, commands };
    });
    return (await this.send(db, items)).flat();
  }

  async masters(): Promise<RedisClient[]> {
    return Promise.all(
      [...new Set(this.owner)].filter((a) => a !== undefined).map((a) => this.node(a)),
    );
  }

  async maxBulk(): Promise<number> {
    return maxBulkOf(await this.masters());
  }

  async close(): Promise<void> {
    const clients = await Promise.allSettled(this.nodes.values());
    this.nodes.clear();
    for (const c of clients)
      if (c.status === 'fulfilled') await c.value.close().catch(() => undefined);
  }

  private async sendOne(item: KeyCommands): Promise<unknown[]> {
    const slot = calculateSlot(item.key);
    let address = this.owner[slot]!;
    let asking = false;
    for (let hop = 0; ; hop++) {
      const client = await this.node(address);
      const calls: Array<Promise<unknown>> = [];
      for (const args of item.commands) {
        // ASKING holds for the next command only (cluster.c, CLIENT_ASKING).
        if (asking) void client.call('ASKING').catch(() => undefined);
        // A pipeline of one: the command may be one encoded already, and an error reply is a value.
        calls.push(client.pipeline([args]).then((replies) => replies[0]));
      }
      const replies = await Promise.all(calls);
      const redirect = replies.find(isRedirect);
      if (redirect === undefined) return replies;
      if (hop === MAX_REDIRECTS) {
        throw new RfError(
          'RF_CLUSTER',
          `${this.where} kept redirecting slot ${slot}: ${redirect.message}`,
          {
            details: { slot, reply: redirect.message },
            hint: 'wait until the cluster has finished resharding, then run the restore again with --conflict skip',
          },
        );
      }
      // "MOVED 3999 127.0.0.1:6381" / "ASK 3999 127.0.0.1:6381"
      const to = redirect.message.split(' ')[2] ?? '';
      address = this.resolve(to);
      asking = redirect.prefix === 'ASK';
      if (!asking) {
        this.owner[slot] = address;
        await this.refresh(client).catch(() => undefined);
      }
    }
  }

  /** Reads the slot map from a node, refusing a cluster whose slots are not all served. */
  private async refresh(client: RedisClient): Promise<void> {
    const info = String(await client.call('CLUSTER', 'INFO'));
    const state = /cluster_state:(\w+)/.exec(info)?.[1];
    const reply = (await client.call('CLUSTER', 'SLOTS')) as unknown[][];
    const owner: Array<string | undefined> = new Array(SLOTS);
    for (const range of reply) {
      const [from, to, master] = range as [number, number, unknown[]];
      const host = String(master[0] ?? '');
      const address = this.resolve(`${host}:${Number(master[1])}`);
      for (let s = Number(from); s <= Number(to); s++) owner[s] = address;
    }
    const gaps = uncoveredSlots(owner);
    if (gaps.length > 0 || state !== 'ok') {
      const shown = gaps.slice(0, 10).map(([a, b]) => (a === b ? `${a}` : `${a}-${b}`));
      throw new RfError(
        'RF_CLUSTER',
        gaps.length > 0
          ? `${this.where} does not serve every slot: nobody serves ${shown.join(', ')}${gaps.length > 10 ? ', …' : ''}`
          : `${this.where} reports cluster_state:${state ?? 'unknown'}`,
        {
          details: { target: this.where, uncovered: gaps.slice(0, 100), state },
          hint: 'restore into a cluster whose slots are all assigned and served (redis-cli --cluster check)',
        },
      );
    }
    this.owner = owner;
  }

  /** A node's address; an empty host in CLUSTER SLOTS means the host rf asked (cluster.c). */
  private resolve(address: string): string {
    const colon = address.lastIndexOf(':');
    const host = address.slice(0, colon);
    return host === '' || host === '?'
      ? `${this.conn.endpoint.host}:${address.slice(colon + 1)}`
      : address;
  }

  private node(address: string): Promise<RedisClient> {
    let client = this.nodes.get(address);
    if (client === undefined) {
      const colon = address.lastIndexOf(':');
      const host = address.slice(0, colon).replace(/^\[|\]$/g, '');
      client = RedisClient.connect(
        { ...this.conn.endpoint, host, port: Number(address.slice(colon + 1)), db: 0 },
        connectOptions(this.conn),
      );
      client.catch(() => this.nodes.delete(address));
      this.nodes.set(address, client);
    }
    return client;
  }
}

export type { CommandArg };
