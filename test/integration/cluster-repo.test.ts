import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { ClusterProbe, type Moment } from '../helpers/cluster-probe.js';
import { waitFor } from '../helpers/load.js';
import { freePort } from '../helpers/redis.js';
import { QUICK_LOCAL_RETAIN } from '../helpers/repo-archive.js';
import { type RfDaemon, rf } from '../helpers/rf.js';
import { bucketBytes, S3_ENV, type S3Server, startS3, waitForStreamPack } from '../helpers/s3.js';
import { scrape } from '../helpers/scrape.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

/**
 * rf listen --cluster --repo against a real 3-master / 3-replica cluster and a real
 * S3-compatible server, sealed with a key: hash-tagged writes on every shard, a kill -9 of rf
 * while it uploads and a restart, SIGTERM; then the local store is deleted and, from the bucket
 * alone, `rf info` shows the cluster and every recorded moment restores with --out (each shard
 * booted) and --into an empty standalone to exactly the content the cluster had.
 */

const CANARY = `canary-${randomBytes(8).toString('hex')}`;
const TAGS = Array.from({ length: 24 }, (_, i) => `{u${i}}`);
let cluster: TestCluster;
let s3: S3Server;
let work: string;
let store: string;
let keyFile: string;
let probe: ClusterProbe;
let repoFlags: string[];
let daemon: RfDaemon;
const moments: Moment[] = [];

let metricsPort = 0;
const listenFlags = () => [
  ...repoFlags,
  '--repo-key-file',
  keyFile,
  '--segment-size',
  '16k',
  '--metrics',
  `127.0.0.1:${metricsPort}`,
];
const readFlags = () => [...repoFlags, '--repo-key-file', keyFile];

beforeAll(async () => {
  s3 = await startS3();
  cluster = await startCluster(3, 1);
  work = await makeTempDir('rf-cluster-repo-');
  store = path.join(work, 'store');
  keyFile = path.join(work, 'repo.key');
  await fs.writeFile(keyFile, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
  repoFlags = s3.flags('clusters/orders');
  probe = new ClusterProbe(cluster, store, work, 'c', 2);
  metricsPort = await freePort();
  daemon = await probe.startDaemon(3, listenFlags(), S3_ENV);

  await probe.writeRound(0, TAGS);
  // One canary value on each shard: none may appear in the bucket's bytes.
  for (const tag of TAGS) await probe.routed(tag, 'SET', `${tag}:canary`, CANARY);
  await probe.writeRound(1, TAGS);
  moments.push(await probe.checkpoint('first', TAGS));
  // Killed while uploads are under way, and started again.
  await probe.writeRound(2, TAGS);
  await waitForStreamPack(s3);
  await daemon.stop('SIGKILL');
  await probe.writeRound(3, TAGS);
  daemon = probe.launch(listenFlags(), S3_ENV);
  await waitFor(
    () =>
      daemon.lines.filter(
        (l) => l.msg === 'partial resync accepted (+CONTINUE): same timeline, no gap',
      ).length === 3,
    'each of the 3 shards to resume with +CONTINUE',
    60_000,
  ).catch((err: Error) => {
    throw new Error(`${err.message}\n${daemon.output}`);
  });
  await probe.writeRound(4, TAGS);
  moments.push(await probe.checkpoint('after the restart', TAGS));
  await probe.writeRound(5, TAGS);
  moments.push(await probe.checkpoint('last', TAGS));
  // Each shard's uploads are its own series, as rf listen --source reports its one.
  await waitFor(async () => {
    const up = (await scrape(`http://127.0.0.1:${metricsPort}/metrics`)).filter(
      (m) => m.name === 'rf_repo_uploaded_bytes_total' && m.value > 0,
    );
    return new Set(up.map((m) => m.labels.shard)).size === 3;
  }, 'rf_repo_uploaded_bytes_total to count uploads of each of the 3 shards');
  const exit = await daemon.stop('SIGTERM');
  expect(exit.code, daemon.output).toBe(0);
  const drained = daemon.lines.filter((l) => l.msg === 'repo: every sealed part is in the bucket');
  expect(drained, daemon.output).toHaveLength(3);
  expect(daemon.lines.some((l) => l.msg === 'repo: the cluster record is in the bucket')).toBe(
    true,
  );
  // The host is gone: nothing of the store is left.
  await fs.rm(store, { recursive: true, force: true });
  probe.readFrom = { args: readFlags(), env: S3_ENV };
}, 300_000);

afterAll(async () => {
  await daemon?.stop('SIGKILL');
  await probe?.close();
  await cluster?.stop();
  await s3?.stop();
  if (work) await removeTempDir(work);
});

describe('rf listen --cluster --repo, then the bucket alone', () => {
  it('the recorded moments differ from each other (the oracle can fail)', () => {
    expect(moments).toHaveLength(3);
    const texts = moments.map((m) => JSON.stringify([...m.content].sort()));
    expect(new Set(texts).size).toBe(3);
    expect(moments[0]!.content.size).toBeGreaterThan(TAGS.length * 4);
  });

  it('rf info --repo shows the cluster: its shards, their slots, where every shard restores', async () => {
    const res = await rf(['info', ...readFlags(), '--json'], { env: S3_ENV });
    expect(res.code, res.stderr).toBe(0);
    const json = JSON.parse(res.stdout) as {
      sources: Array<{ name: string }>;
      clusters: Array<{
        name: string;
        kind: string;
        shards: Array<{ id: string; source: string; slots: number[][]; timelines: unknown[] }>;
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
    for (const s of c.shards) expect(s.timelines, s.source).toHaveLength(1);
    expect(json.sources.map((s) => s.name).sort()).toEqual(c.shards.map((s) => s.source).sort());
    for (const m of moments) {
      expect(
        c.restorable.some((r) => Date.parse(r.from) <= m.t && m.t <= Date.parse(r.until)),
        `${m.label} in ${JSON.stringify(c.restorable)}`,
      ).toBe(true);
    }
    // --name <cluster> reads the cluster and its shards only.
    const named = await rf(['info', ...readFlags(), '--name', 'c', '--json'], { env: S3_ENV });
    expect(named.code, named.stderr).toBe(0);
    expect((JSON.parse(named.stdout) as { clusters: unknown[] }).clusters).toHaveLength(1);
  });

  it('restores every moment with --out, each shard booted, to exactly the cluster content', async () => {
    for (const m of moments) {
      const { content, manifest } = await probe.restoredOut(m.t);
      expect(manifest.shards, m.label).toHaveLength(3);
      expect(content, m.label).toEqual(m.content);
    }
  }, 300_000);

  it('restores every moment --into an empty standalone to exactly the cluster content', async () => {
    for (const m of moments) expect(await probe.restoredInto(m.t), m.label).toEqual(m.content);
  }, 300_000);

  it('rf log --repo --name <cluster> reads every shard’s stream from the bucket', async () => {
    const r = await rf(['log', ...readFlags(), '--name', 'c', '--key', '*:canary'], {
      env: S3_ENV,
      timeoutMs: 60_000,
    });
    expect(r.code, r.stderr).toBe(0);
    for (const tag of TAGS) expect(r.stdout).toContain(`${tag}:canary`);
    expect(r.stdout).toContain(CANARY);
  });

  it('keeps the canary out of the bucket’s bytes; a read without the key is refused', async () => {
    const bytes = await bucketBytes(s3);
    expect(bytes.length).toBeGreaterThan(10_000);
    expect(bytes.includes(Buffer.from(CANARY))).toBe(false);
    // The canary did reach every shard's archive: the restore above brought it back.
    expect([...moments[0]!.content.keys()].filter((k) => k.endsWith(':canary'))).toHaveLength(
      TAGS.length,
    );
    const noKey = await rf(['info', ...repoFlags, '--name', 'c', '--json'], { env: S3_ENV });
    expect(noKey.code, noKey.stderr).toBe(2);
    expect(noKey.stderr).toContain('RF_REPO_KEY');
  });

  it('rf verify --repo checks every shard and the cluster record; a lost shard manifest is named', async () => {
    const ok = await rf(['verify', ...readFlags(), '--name', 'c', '--json'], {
      env: S3_ENV,
      timeoutMs: 120_000,
    });
    expect(ok.code, `${ok.stdout}\n${ok.stderr}`).toBe(0);
    const report = JSON.parse(ok.stdout) as { sources: Array<{ name: string }> };
    expect(report.sources).toHaveLength(3);
    // Every manifest of one shard removed: the cluster record names what the bucket lost.
    const shardDir = (await fs.readdir(path.join(s3.dir, s3.bucket, 'clusters', 'orders'))).find(
      (d) => d.startsWith('c.'),
    )!;
    const manifests = path.join(s3.dir, s3.bucket, 'clusters', 'orders', shardDir, 'manifest');
    const saved = path.join(work, 'saved-manifests');
    await fs.rename(manifests, saved);
    try {
      const bad = await rf(['verify', ...readFlags(), '--name', 'c'], {
        env: S3_ENV,
        timeoutMs: 120_000,
      });
      expect(bad.code, `${bad.stdout}\n${bad.stderr}`).toBe(1);
      expect(bad.stdout).toContain(`${shardDir}/manifest/`);
      // And a restore of the cluster from that bucket refuses: one shard has nothing to restore.
      const out = path.join(work, 'refused');
      const res = await probe.restore(moments[0]!.t, '--out', out);
      expect(res.code, res.stderr).not.toBe(0);
      expect(res.stderr).toMatch(/RF_/);
      await expect(fs.access(path.join(out, 'cluster.json'))).rejects.toThrow();
    } finally {
      await fs.rename(saved, manifests);
    }
    // A flipped byte in the older of the two cluster records kept: named as damaged.
    const records = path.join(s3.dir, s3.bucket, 'clusters', 'orders', 'c', 'cluster');
    const older = (await fs.readdir(records))
      .filter((f) => f.endsWith('._S3rver_object'))
      .sort()[0]!;
    const file = path.join(records, older);
    const bytes = await fs.readFile(file);
    bytes[Math.floor(bytes.length / 2)]! ^= 0xff;
    await fs.writeFile(file, bytes);
    const damaged = await rf(['verify', ...readFlags(), '--name', 'c', '--json'], {
      env: S3_ENV,
      timeoutMs: 120_000,
    });
    expect(damaged.code, `${damaged.stdout}\n${damaged.stderr}`).toBe(1);
    expect((JSON.parse(damaged.stdout) as { bucket: unknown[] }).bucket).toEqual([
      expect.objectContaining({
        kind: 'damaged',
        object: `c/cluster/${older.replace('._S3rver_object', '')}`,
      }),
    ]);
  }, 240_000);

  it('--local-retain: what the bucket holds leaves every shard’s store; the bucket restores the cluster', async () => {
    const localWork = path.join(work, 'local');
    await fs.mkdir(localWork);
    const local = new ClusterProbe(cluster, path.join(localWork, 'store'), localWork, 'local', 2);
    const flags = [...s3.flags('clusters/local'), '--repo-key-file', keyFile];
    const d = await local.startDaemon(3, [...flags, ...QUICK_LOCAL_RETAIN], S3_ENV);
    try {
      await local.writeRound(20, TAGS);
      const early = await local.checkpoint('early', TAGS);
      const offloaded = () =>
        new Set(
          d.lines
            .filter(
              (l) => l.msg === 'local retention: removed what the bucket holds from the store',
            )
            .map((l) => l.shard),
        ).size;
      let round = 21;
      await waitFor(
        async () => {
          await local.writeRound(round++, TAGS);
          return offloaded() === 3;
        },
        'every shard to remove from the store what the bucket holds',
        90_000,
      );
      let refused: Awaited<ReturnType<typeof rf>> | undefined;
      await waitFor(
        async () => {
          refused = await local.restore(
            early.t,
            '--out',
            path.join(localWork, `refused-${Date.now()}`),
          );
          return refused.code !== 0;
        },
        'the early moment to leave the store',
        60_000,
      );
      expect(refused?.code, refused?.stderr).toBe(3);
      expect(refused?.stderr).toMatch(/RF_REPO_ONLY/);
      expect((await d.stop('SIGTERM')).code, d.output).toBe(0);
      local.readFrom = { args: flags, env: S3_ENV };
      const { content } = await local.restoredOut(early.t);
      expect(content).toEqual(early.content);
    } finally {
      await d.stop('SIGKILL');
      await local.close();
    }
  }, 240_000);
});
