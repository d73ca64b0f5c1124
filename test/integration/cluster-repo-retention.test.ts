import { promises as fs } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { startCluster, tagServedBy } from '../helpers/cluster.js';
import { ClusterProbe, type Moment, pruneClusterStore } from '../helpers/cluster-probe.js';
import { waitFor } from '../helpers/load.js';
import { rf } from '../helpers/rf.js';
import { S3_ENV, startS3 } from '../helpers/s3.js';
import { testScope } from '../helpers/scope.js';

/**
 * Retention of a cluster's bucket under a simulated clock: the store of rf listen --cluster
 * --repo is pruned to a window start given directly (as --retain computes it from now), and the
 * next rf listen drops from every shard's folder what the store no longer needs, and writes the
 * cluster record as pruned. From the bucket alone, the window start and a later moment restore
 * exactly, and a moment before the window is refused.
 */
const scope = testScope();

/** s3rver's files of the stream packs under `prefix`. */
async function streamPacks(dir: string, prefix: string): Promise<string[]> {
  return (await fs.readdir(path.join(dir, prefix), { recursive: true }))
    .map(String)
    .filter((f) => f.includes('/seg/') && f.endsWith('._S3rver_object'));
}

describe('rf listen --cluster --repo, pruned', () => {
  it('drops from the bucket what the window no longer needs; the window still restores from it alone', async () => {
    const s3 = await startS3();
    scope.defer(() => s3.stop());
    const cluster = await startCluster(3, 0);
    scope.defer(() => cluster.stop());
    const store = await scope.storeDir();
    const work = path.dirname(store);
    const masters = cluster.nodes.slice(0, 3);
    const tags = await Promise.all(
      masters.map(async (m) => `{${await tagServedBy(cluster, m, 'p')}}`),
    );
    const probe = new ClusterProbe(cluster, store, work, 'c', 1);
    scope.defer(() => probe.close());
    const repoFlags = s3.flags('pruned');
    const listen = ['--segment-size', '4k', '--base-every', '1s', ...repoFlags];

    const first = await probe.startDaemon(3, listen, S3_ENV);
    let round = 0;
    const rounds = async (n: number) => {
      for (const end = round + n; round < end; round++) await probe.writeRound(round, tags);
    };
    const fresh = () => first.lines.filter((l) => l.msg === 'fresh base taken').length;
    await rounds(10);
    const before = await probe.checkpoint('before the window', tags);
    await rounds(10);
    // Fresh bases of every shard after it: the window start needs none of what came before.
    const bases = fresh();
    await waitFor(() => fresh() >= bases + 6, 'two fresh bases of each shard', 60_000);
    await rounds(5);
    const windowStart = await probe.checkpoint('the window start', tags);
    await rounds(10);
    const later = await probe.checkpoint('later', tags);
    expect((await first.stop('SIGTERM')).code, first.output).toBe(0);
    const packsBefore = await streamPacks(path.join(s3.dir, s3.bucket), 'pruned');

    // The prune the daemon runs, given its window's start: the record first, then each shard.
    const { result } = await pruneClusterStore(store, 'c', windowStart.t);
    expect(result.segmentsDeleted).toBeGreaterThan(0);

    // The next rf listen uploads the pruned records: each shard's bucket follows its store.
    const second = probe.launch(listen, S3_ENV);
    await waitFor(
      () =>
        new Set(
          second.lines
            .filter((l) => l.msg === 'repo: retention pruned the bucket')
            .map((l) => l.shard),
        ).size === 3,
      'every shard to prune its folder of the bucket',
      60_000,
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n${second.output}`);
    });
    expect((await second.stop('SIGTERM')).code, second.output).toBe(0);
    const packsAfter = await streamPacks(path.join(s3.dir, s3.bucket), 'pruned');
    expect(packsBefore.filter((p) => !packsAfter.includes(p)).length).toBeGreaterThan(0);

    // The host is gone: from the bucket alone.
    await fs.rm(store, { recursive: true, force: true });
    probe.readFrom = { args: repoFlags, env: S3_ENV };
    const info = await rf(['info', ...repoFlags, '--name', 'c', '--json'], { env: S3_ENV });
    expect(info.code, info.stderr).toBe(0);
    const c = (
      JSON.parse(info.stdout) as {
        clusters: Array<{
          restorable: Array<{ from: string }>;
          slotChanges: Array<{ at: string }>;
        }>;
      }
    ).clusters[0]!;
    expect(Date.parse(c.restorable[0]!.from)).toBe(windowStart.t);
    expect(Date.parse(c.slotChanges[0]!.at)).toBe(windowStart.t);
    for (const m of [windowStart, later] as Moment[])
      expect((await probe.restoredOut(m.t)).content, m.label).toEqual(m.content);
    const out = path.join(work, 'before');
    const refused = await probe.restore(before.t, '--out', out);
    expect(refused.code, refused.stderr).toBe(2);
    expect(refused.stderr).toContain('RF_TIME_OUT_OF_RANGE');
    await expect(fs.access(out)).rejects.toThrow();
    const verify = await rf(['verify', ...repoFlags, '--name', 'c'], {
      env: S3_ENV,
      timeoutMs: 120_000,
    });
    expect(verify.code, `${verify.stdout}\n${verify.stderr}`).toBe(0);
  }, 300_000);
});
