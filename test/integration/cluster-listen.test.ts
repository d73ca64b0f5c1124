import { existsSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { ClusterProbe, type Moment, readBooted } from '../helpers/cluster-probe.js';
import { type KeyState, keyStates } from '../helpers/keys.js';
import { waitFor } from '../helpers/load.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import { RfDaemon, rf } from '../helpers/rf.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

/**
 * rf listen --cluster against a real 3-master / 3-replica cluster: one store, one source per
 * shard, every recorded moment restored shard by shard (each directory booted) to exactly the
 * content the cluster had, across a graceful CLUSTER FAILOVER and a kill -9 of rf.
 */

let cluster: TestCluster;
let work: string;
let store: string;
let daemon: RfDaemon;
let restores = 0;
let probe: ClusterProbe;
let beforeCapture = 0;
const TAGS = Array.from({ length: 24 }, (_, i) => `{u${i}}`);

function startDaemon(): RfDaemon {
  return RfDaemon.start([
    '--cluster',
    '--source',
    cluster.url,
    '--store',
    store,
    '--name',
    'c',
    '--flush-interval',
    '10',
  ]);
}

const writeRound = (round: number) => probe.writeRound(round, TAGS);
const checkpoint = () => probe.checkpoint('', TAGS);
const clientOf = (node: RedisServer) => probe.clientOf(node);

async function shardSources(): Promise<string[]> {
  const res = await rf(['info', '--store', store, '--json']);
  expect(res.code, res.stderr).toBe(0);
  const json = JSON.parse(res.stdout) as { sources: Array<{ name: string }> };
  return json.sources.map((s) => s.name).filter((n) => n.startsWith('c.'));
}

/** `rf restore --name c --until T --out DIR`: every shard's directory booted and read back. */
async function clusterRestoredAt(t: number): Promise<Map<string, KeyState>> {
  const { content, manifest } = await probe.restoredOut(t);
  expect(manifest.shards).toHaveLength(3);
  return content;
}

/** Restores every shard at T with --out, boots each directory and reads it back, merged. */
async function restoredAt(t: number): Promise<Map<string, KeyState>> {
  const merged = new Map<string, KeyState>();
  for (const source of await shardSources()) {
    const out = path.join(work, `out-${++restores}-${source}`);
    const res = await rf(
      ['restore', '--store', store, '--name', source, '--until', `@${t / 1000}`, '--out', out],
      { timeoutMs: 60_000 },
    );
    expect(res.code, `${res.stdout}\n${res.stderr}`).toBe(0);
    await readBooted(out, merged);
  }
  return merged;
}

beforeAll(async () => {
  cluster = await startCluster(3, 1);
  work = await makeTempDir('rf-cluster-listen-');
  store = path.join(work, 'store');
  probe = new ClusterProbe(cluster, store, work, 'c', 2);
  beforeCapture = Date.now() - 1000;
  daemon = startDaemon();
  await daemon.waitForLog((l) => l.msg === 'cluster topology found', 30_000);
  await waitFor(
    () => daemon.lines.filter((l) => l.msg === 'first timeline started from the base').length === 3,
    'a first base from each of the 3 shards',
    60_000,
  ).catch((err: Error) => {
    throw new Error(`${err.message}\n${daemon.output}`);
  });
}, 180_000);

afterAll(async () => {
  await daemon?.stop();
  await probe?.close();
  await cluster?.stop();
  if (work) await removeTempDir(work);
});

const moments: Moment[] = [];

describe('rf listen --cluster', () => {
  it('lists the topology it found, one source per shard', async () => {
    const found = daemon.lines.find((l) => l.msg === 'cluster topology found');
    expect(found).toBeDefined();
    const shards = found!.shards as Array<{ source: string; slots: number[][] }>;
    expect(shards).toHaveLength(3);
    expect(shards.reduce((n, s) => n + s.slots.reduce((m, [a, b]) => m + b! - a! + 1, 0), 0)).toBe(
      16384,
    );
    expect((await shardSources()).sort()).toEqual(shards.map((s) => s.source).sort());
  });

  it('restores every shard at a quiet moment to exactly the cluster content', async () => {
    await writeRound(0);
    await writeRound(1);
    moments.push(await checkpoint());
    expect(moments[0]!.content.size).toBeGreaterThan(TAGS.length * 4);
    expect(await restoredAt(moments[0]!.t)).toEqual(moments[0]!.content);
  }, 120_000);

  it('continues the shard timeline through a graceful CLUSTER FAILOVER', async () => {
    const masters = await cluster.masters();
    const replica = cluster.nodes.find((n) => !masters.includes(n))!;
    const mark = daemon.lines.length;
    await cluster.failover(replica);
    // rf's session follows the shard to its new master and resumes there.
    const resumed = await daemon.waitForLog(
      (l) =>
        l.msg === 'partial resync accepted (+CONTINUE): same timeline, no gap' &&
        l.master === `127.0.0.1:${replica.port}`,
      30_000,
      mark,
    );
    expect(resumed.timeline).toBe(1);
    // Two partial syncs on the new master: the demoted master's and rf's.
    const stats = await (await clientOf(replica)).info('stats');
    expect(Number(stats.sync_partial_ok)).toBeGreaterThanOrEqual(2);
    expect(Number(stats.sync_full)).toBe(0);
    await writeRound(2);
    moments.push(await checkpoint());
    const info = JSON.parse((await rf(['info', '--store', store, '--json'])).stdout) as {
      sources: Array<{ name: string; timelines: unknown[]; gaps: unknown[] }>;
    };
    for (const s of info.sources.filter((x) => x.name.startsWith('c.'))) {
      expect(s.timelines, s.name).toHaveLength(1);
      expect(s.gaps, s.name).toEqual([]);
    }
    for (const m of moments) expect(await clusterRestoredAt(m.t)).toEqual(m.content);
  }, 180_000);

  it('rf info shows the cluster: its shards, their slots, and where every shard restores', async () => {
    const res = await rf(['info', '--store', store, '--json']);
    expect(res.code, res.stderr).toBe(0);
    const json = JSON.parse(res.stdout) as {
      clusters: Array<{
        name: string;
        kind: string;
        shards: Array<{
          source: string;
          slots: number[][];
          master: string;
          timelines: unknown[];
          restorable: Array<{ from: string; until: string }>;
        }>;
        restorable: Array<{ from: string; until: string }>;
      }>;
    };
    expect(json.clusters).toHaveLength(1);
    const c = json.clusters[0]!;
    expect(c.name).toBe('c');
    expect(c.kind).toBe('cluster');
    expect(c.shards).toHaveLength(3);
    const slots = c.shards.flatMap((s) => s.slots).reduce((n, [a, b]) => n + b! - a! + 1, 0);
    expect(slots).toBe(16384);
    const masters = (await cluster.masters()).map((m) => `127.0.0.1:${m.port}`).sort();
    expect(c.shards.map((s) => s.master).sort()).toEqual(masters);
    // Every recorded moment is a cluster moment: inside the shards' common range.
    for (const m of moments) {
      expect(
        c.restorable.some((r) => Date.parse(r.from) <= m.t && m.t <= Date.parse(r.until)),
        `${new Date(m.t).toISOString()} in ${JSON.stringify(c.restorable)}`,
      ).toBe(true);
    }
    const latestShardStart = Math.max(
      ...c.shards.map((s) => Math.min(...s.restorable.map((r) => Date.parse(r.from)))),
    );
    expect(Date.parse(c.restorable[0]!.from)).toBe(latestShardStart);

    const named = JSON.parse(
      (await rf(['info', '--store', store, '--name', 'c', '--json'])).stdout,
    ) as {
      sources: Array<{ name: string }>;
    };
    expect(named.sources.map((s) => s.name).sort()).toEqual(c.shards.map((s) => s.source).sort());
    const text = await rf(['info', '--store', store]);
    expect(text.stdout).toContain('cluster c: 3 shards');
  });

  it('resumes every shard after a kill -9 of rf, writes going on meanwhile', async () => {
    await writeRound(3);
    await daemon.stop('SIGKILL');
    await writeRound(4);
    daemon = startDaemon();
    await waitFor(
      () =>
        daemon.lines.filter(
          (l) => l.msg === 'partial resync accepted (+CONTINUE): same timeline, no gap',
        ).length === 3,
      'each of the 3 shards to resume with +CONTINUE',
      60_000,
    );
    await writeRound(5);
    moments.push(await checkpoint());
    for (const m of moments) expect(await clusterRestoredAt(m.t)).toEqual(m.content);
  }, 240_000);
});

describe('rf restore --into of a cluster', () => {
  it('merges every shard at T into one empty standalone, and refuses a second time', async () => {
    for (const m of [moments[0]!, moments.at(-1)!]) {
      const target = await startRedis();
      try {
        const url = target.url;
        const res = await rf(
          [
            'restore',
            '--store',
            store,
            '--name',
            'c',
            '--until',
            `@${m.t / 1000}`,
            '--into',
            url,
            '--json',
          ],
          { timeoutMs: 120_000 },
        );
        expect(res.code, `${res.stdout}\n${res.stderr}`).toBe(0);
        const json = JSON.parse(res.stdout) as { written: number; shards: unknown[] };
        expect(json.shards).toHaveLength(3);
        expect(json.written).toBe(m.content.size);
        expect(await keyStates(await target.client(), 0)).toEqual(m.content);
        // Every key is there now: --conflict fail refuses before any shard writes.
        const again = await rf(
          ['restore', '--store', store, '--name', 'c', '--until', `@${m.t / 1000}`, '--into', url],
          { timeoutMs: 120_000 },
        );
        expect(again.code, again.stderr).toBe(2);
        expect(again.stderr).toContain('RF_INTO_CONFLICT');
        expect(await keyStates(await target.client(), 0)).toEqual(m.content);
      } finally {
        await target.stop();
      }
    }
  }, 300_000);
});

describe('rf restore --dry-run of a cluster', () => {
  it('plans every shard at one T, writes nothing, and refuses --target by name', async () => {
    const m = moments.at(-1)!;
    const out = path.join(work, 'planned');
    const at = ['restore', '--store', store, '--name', 'c', '--until', `@${m.t / 1000}`];
    const res = await rf([...at, '--out', out, '--dry-run', '--json'], { timeoutMs: 120_000 });
    expect(res.code, res.stderr).toBe(0);
    const plan = JSON.parse(res.stdout) as {
      dryRun: boolean;
      cluster: string;
      until: { utc: string };
      shards: Array<{
        id: string;
        slots: number[][];
        timeline: number;
        base: { offset: number };
        lastWrite: { time: string } | null;
      }>;
    };
    expect(plan.dryRun).toBe(true);
    expect(plan.cluster).toBe('c');
    expect(Date.parse(plan.until.utc)).toBe(m.t);
    expect(plan.shards).toHaveLength(3);
    const slots = plan.shards.flatMap((s) => s.slots).reduce((n, [a, b]) => n + b! - a! + 1, 0);
    expect(slots).toBe(16384);
    for (const s of plan.shards) {
      expect(s.base.offset).toBeGreaterThanOrEqual(0);
      if (s.lastWrite !== null) expect(Date.parse(s.lastWrite.time)).toBeLessThanOrEqual(m.t);
    }
    expect(existsSync(out)).toBe(false);

    const text = await rf([...at, '--dry-run'], { timeoutMs: 120_000 });
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toContain('plan: cluster c, 3 shards');
    expect(text.stdout).toContain('nothing written (--dry-run)');

    const target = await startRedis();
    try {
      const refused = await rf([...at, '--target', target.url]);
      expect(refused.code, refused.stderr).toBe(2);
      expect(refused.stderr).toContain('RF_USAGE');
      expect(refused.stderr).toContain('c is a cluster');
      expect(refused.stderr).toContain('--into');
      expect(await (await target.client()).call('DBSIZE')).toBe(0);
    } finally {
      await target.stop();
    }
  }, 240_000);
});

describe('bad input', () => {
  it('refuses a cluster restore at a T before rf knew who owned the slots, writing nothing', async () => {
    const out = path.join(work, 'too-early');
    const res = await rf([
      'restore',
      '--store',
      store,
      '--name',
      'c',
      '--until',
      `@${beforeCapture / 1000}`,
      '--out',
      out,
    ]);
    expect(res.code, res.stderr).toBe(2);
    expect(res.stderr).toContain('RF_TIME_OUT_OF_RANGE');
    expect(res.stderr).toContain('rf info --name c');
    expect(existsSync(out)).toBe(false);
  });

  it('refuses --cluster against a node that is not in cluster mode, writing nothing', async () => {
    const standalone = await startRedis();
    try {
      const dir = path.join(work, 'bad-1');
      const res = await rf(['listen', '--cluster', '--source', standalone.url, '--store', dir]);
      expect(res.code).toBe(2);
      expect(res.stderr).toContain('RF_NOT_CLUSTER');
      expect(res.stderr).toContain(`127.0.0.1:${standalone.port}`);
      expect(existsSync(dir)).toBe(false);
    } finally {
      await standalone.stop();
    }
  });

  it('refuses a cluster node without --cluster: its stream is one shard only', async () => {
    const dir = path.join(work, 'bad-2');
    const res = await rf(['listen', '--source', cluster.url, '--store', dir]);
    expect(res.code).toBe(2);
    expect(res.stderr).toContain('RF_SOURCE_IS_CLUSTER');
    expect(res.stderr).toContain('--cluster');
    expect(existsSync(dir)).toBe(false);
  });
});
