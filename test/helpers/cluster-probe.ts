import { readFileSync } from 'node:fs';
import path from 'node:path';
import { expect } from 'vitest';
import { silentLogger } from '../../src/logger.js';
import { slotOf } from '../../src/replication/cluster-topology.js';
import { type RedisClient, RedisReplyError } from '../../src/resp/client.js';
import type { PruneResult } from '../../src/retention/prune.js';
import { pruneShards, retainedRecord } from '../../src/retention/prune-cluster.js';
import { type ClusterRecord, readCluster, writeCluster } from '../../src/store/cluster.js';
import { Store } from '../../src/store/store.js';
import type { TestCluster } from './cluster.js';
import { type KeyState, keyStates } from './keys.js';
import { replicationInfo, waitFor } from './load.js';
import { type RedisServer, startRedis } from './redis.js';
import { RfDaemon, rf } from './rf.js';

/** A recorded moment: T, and the cluster's content key by key just before it. */
export interface Moment {
  label: string;
  t: number;
  content: Map<string, KeyState>;
}

export interface ClusterOutManifest {
  until: string;
  shards: Array<{ id: string; dir: string; slots: number[][]; lastWrite: string | null }>;
}

/**
 * What a cluster test reads and writes through: one connection per node, commands routed by
 * slot (following MOVED and ASK while slots migrate), the content read from each slot's owner,
 * and restores of a recorded moment read back.
 */
export class ClusterProbe {
  private readonly clients = new Map<number, RedisClient>();
  private restores = 0;

  constructor(
    readonly cluster: TestCluster,
    readonly store: string,
    readonly work: string,
    readonly name: string,
    /** rf included: the replicas a master must see in sync at a quiet moment. */
    readonly replicasOf: number | ((master: RedisServer) => number),
  ) {}

  async clientOf(node: RedisServer): Promise<RedisClient> {
    let c = this.clients.get(node.port);
    if (c === undefined) {
      c = await node.client();
      this.clients.set(node.port, c);
    }
    return c;
  }

  private byPort(port: number): RedisServer {
    const node = this.cluster.nodes.find((n) => n.port === port);
    if (node === undefined) throw new Error(`no test node listens on ${port}`);
    return node;
  }

  /**
   * One command for `key`, sent to its slot's owner: a MOVED reply resends to the node named, an
   * ASK reply resends there after ASKING, a TRYAGAIN (a multi-key command while the slot's keys
   * are split) waits and resends. One caller at a time per node: ASKING holds for the next command.
   */
  async routed(key: string, ...args: string[]): Promise<unknown> {
    let node = await this.cluster.ownerOf(slotOf(key));
    let asking = false;
    for (let attempt = 0; attempt < 50; attempt++) {
      const c = await this.clientOf(node);
      try {
        if (asking) await c.call('ASKING');
        return await c.call(...args);
      } catch (err) {
        if (!(err instanceof RedisReplyError)) throw err;
        const redirect = /^(MOVED|ASK) \d+ [^:]+:(\d+)/.exec(err.message);
        if (redirect !== null) {
          node = this.byPort(Number(redirect[2]));
          asking = redirect[1] === 'ASK';
          continue;
        }
        if (err.prefix !== 'TRYAGAIN') throw err;
        asking = false;
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    throw new Error(`${args[0]} ${key}: still redirected after 50 attempts`);
  }

  /**
   * Hash-tagged writes on every shard `tags` reach: plain commands, an expiry, MULTI/EXEC, EVAL
   * and (after the first round) a DEL, each sent to the tag's slot owner.
   */
  async writeRound(round: number, tags: readonly string[]): Promise<void> {
    for (const tag of tags) {
      const c = await this.clientOf(await this.cluster.ownerOf(slotOf(tag)));
      await c.call('SET', `${tag}:s`, `v${round}`);
      await c.call('HSET', `${tag}:h`, `f${round}`, String(round));
      await c.call('PEXPIRE', `${tag}:h`, String(3_600_000 + round));
      await c.call('MULTI');
      await c.call('INCR', `${tag}:n`);
      await c.call('RPUSH', `${tag}:l`, `r${round}`);
      await c.call('EXEC');
      await c.call(
        'EVAL',
        "redis.call('SET', KEYS[1], ARGV[1]); return redis.call('SADD', KEYS[2], ARGV[1])",
        '2',
        `${tag}:e`,
        `${tag}:set`,
        `e${round}`,
      );
      if (round > 0) await c.call('DEL', `${tag}:s`);
    }
  }

  /** Every master's replicas (rf among them) have acknowledged its whole stream. */
  async allAcked(): Promise<void> {
    for (const m of await this.cluster.masters()) {
      const c = await this.clientOf(m);
      const want = typeof this.replicasOf === 'number' ? this.replicasOf : this.replicasOf(m);
      await waitFor(
        async () => {
          const info = await replicationInfo(c);
          return (
            info.replicas.length === want &&
            info.replicas.every((r) => r.state === 'online' && r.offset === info.masterOffset)
          );
        },
        `every replica of ${m.port}, rf among them, to acknowledge master_repl_offset`,
        60_000,
      );
    }
  }

  /** The cluster's content, key by key, each key read from the master that holds it. */
  async content(): Promise<Map<string, KeyState>> {
    const all = new Map<string, KeyState>();
    for (const m of await this.cluster.masters()) {
      for (const [k, v] of await askingStates(await this.clientOf(m))) {
        // A key on two masters (a MIGRATE half done) is one key of the cluster, the same value.
        const seen = all.get(k);
        if (seen !== undefined) expect(seen, `${k} differs between two masters`).toEqual(v);
        all.set(k, v);
      }
    }
    return all;
  }

  /**
   * A quiet moment: every stream acknowledged, the content read, T taken just after; then a
   * write after T on each of `tags` so the archive reaches past T and a restore must leave it out.
   */
  async checkpoint(label: string, tags: readonly string[]): Promise<Moment> {
    await this.allAcked();
    const content = await this.content();
    const t = Date.now();
    await waitFor(() => Date.now() > t, 'the clock to move past T', 1_000, 1);
    for (const tag of tags) await this.routed(tag, 'SET', `${tag}:after`, String(t));
    await this.allAcked();
    return { label, t, content };
  }

  /** Where restores read: the store, or (`--repo …` flags and their credentials) a bucket. */
  readFrom: { args: string[]; env: NodeJS.ProcessEnv } | null = null;

  /** `rf restore --name <cluster> --until @T … --json`. */
  restore(t: number, ...args: string[]) {
    return rf(
      [
        'restore',
        ...(this.readFrom?.args ?? ['--store', this.store]),
        '--name',
        this.name,
        '--until',
        `@${t / 1000}`,
        ...args,
        '--json',
      ],
      { timeoutMs: 120_000, ...(this.readFrom === null ? {} : { env: this.readFrom.env }) },
    );
  }

  /**
   * `rf restore --until T --out DIR` of the cluster: every shard's directory booted and read
   * back, merged, a key found in two directories failing the test.
   */
  async restoredOut(
    t: number,
  ): Promise<{ content: Map<string, KeyState>; manifest: ClusterOutManifest }> {
    const out = path.join(this.work, `cluster-out-${++this.restores}`);
    const res = await this.restore(t, '--out', out);
    expect(res.code, `${res.stdout}\n${res.stderr}`).toBe(0);
    const manifest = JSON.parse(
      readFileSync(path.join(out, 'cluster.json'), 'utf8'),
    ) as ClusterOutManifest;
    expect(Date.parse(manifest.until)).toBe(t);
    const slots = manifest.shards.flatMap((s) => s.slots).reduce((n, [a, b]) => n + b! - a! + 1, 0);
    expect(slots).toBe(16384);
    const merged = new Map<string, KeyState>();
    for (const shard of manifest.shards) {
      if (shard.lastWrite !== null) expect(Date.parse(shard.lastWrite)).toBeLessThanOrEqual(t);
      await readBooted(path.join(out, shard.dir), merged);
    }
    return { content: merged, manifest };
  }

  /** `rf restore --until T --into` an empty standalone instance, read back. */
  async restoredInto(t: number): Promise<Map<string, KeyState>> {
    const target = await startRedis();
    try {
      const res = await this.restore(t, '--into', target.url);
      expect(res.code, `${res.stdout}\n${res.stderr}`).toBe(0);
      const states = await keyStates(await target.client(), 0);
      expect((JSON.parse(res.stdout) as { written: number }).written).toBe(states.size);
      return states;
    } finally {
      await target.stop();
    }
  }

  /** `rf listen --cluster` on the store, with `extra` flags, just started. */
  launch(extra: string[] = [], env: NodeJS.ProcessEnv = {}): RfDaemon {
    return RfDaemon.start(
      [
        '--cluster',
        '--source',
        this.cluster.url,
        '--store',
        this.store,
        '--name',
        this.name,
        '--flush-interval',
        '10',
        ...extra,
      ],
      env,
    );
  }

  /** `rf listen --cluster` on the store, once it has a first base from each of `shards`. */
  async startDaemon(
    shards: number,
    extra: string[] = [],
    env: NodeJS.ProcessEnv = {},
  ): Promise<RfDaemon> {
    const daemon = this.launch(extra, env);
    await waitFor(
      () =>
        daemon.lines.filter((l) => l.msg === 'first timeline started from the base').length ===
        shards,
      `a first base from each of the ${shards} shards`,
      90_000,
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n${daemon.output}`);
    });
    return daemon;
  }

  async close(): Promise<void> {
    for (const c of this.clients.values()) await c.close().catch(() => undefined);
  }
}

/** Boots a restored directory and reads its keys into `merged`, a key found twice failing. */
export async function readBooted(dir: string, merged: Map<string, KeyState>): Promise<void> {
  const booted = await startRedis({ dir, args: ['--appendonly', 'yes'] });
  try {
    for (const [k, v] of await keyStates(await booted.client(), 0)) {
      expect(merged.has(k), `${k} restored from two shards`).toBe(false);
      merged.set(k, v);
    }
  } finally {
    await booted.stop();
  }
}

/**
 * keyStates of a cluster master, each read preceded by ASKING: a master importing a slot answers
 * MOVED for the keys already moved to it unless asked that way (cluster.c getNodeByQuery).
 */
async function askingStates(client: RedisClient): Promise<Map<string, KeyState>> {
  const names = new Set<string>();
  let cursor = '0';
  do {
    const [next, batch] = (await client.call('SCAN', cursor, 'COUNT', '1000')) as [
      unknown,
      unknown[],
    ];
    cursor = String(next);
    for (const k of batch) names.add(String(k));
  } while (cursor !== '0');
  // Sent in order on one connection: each ASKING holds for the command right after it.
  const asked = (...args: string[]) => {
    client.call('ASKING').catch(() => undefined);
    return client.call(...args);
  };
  const keys = [...names];
  const replies = keys.map((k) => [asked('DEBUG', 'DIGEST-VALUE', k), asked('PEXPIRETIME', k)]);
  const states = new Map<string, KeyState>();
  for (const [i, k] of keys.entries()) {
    const [digest, expireAt] = await Promise.all(replies[i]!);
    states.set(k, { digest: String((digest as unknown[])[0]), expireAt: Number(expireAt) });
  }
  return states;
}

/** `count` hash tags whose slots satisfy `keep`, in a stable order. */
export function tagsWhere(count: number, keep: (slot: number) => boolean, prefix = 't'): string[] {
  const tags: string[] = [];
  for (let i = 0; tags.length < count; i++) {
    const tag = `{${prefix}${i}}`;
    if (keep(slotOf(tag))) tags.push(tag);
  }
  return tags;
}

/**
 * The prune rf listen --cluster --retain runs, given its window's start (a simulated clock), on a
 * store no daemon holds: the record first, then each shard. `migrateWindowMs` shortens the
 * MIGRATE look-back to a test's seconds. Returns the record as it was before, and what went.
 */
export async function pruneClusterStore(
  dir: string,
  name: string,
  windowStart: number,
  migrateWindowMs = 1_000,
): Promise<{ before: ClusterRecord; result: PruneResult }> {
  const s = await Store.open(dir, { create: false });
  try {
    const before = (await readCluster(s, name))!;
    const pruned = retainedRecord(before, windowStart, 60_000, Date.now());
    await writeCluster(s, pruned);
    const result = await pruneShards(
      s,
      pruned.shards,
      windowStart,
      60_000,
      silentLogger(),
      migrateWindowMs,
    );
    return { before, result };
  } finally {
    await s.close();
  }
}
