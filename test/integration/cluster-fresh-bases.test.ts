import { describe, expect, it } from 'vitest';
import { clusterListenArgs, startCluster, tagServedBy } from '../helpers/cluster.js';
import { waitFor } from '../helpers/load.js';
import { rf } from '../helpers/rf.js';
import { testScope } from '../helpers/scope.js';
import { scrape } from '../helpers/scrape.js';

/**
 * rf listen --cluster --base-every: each shard takes fresh bases from its master as rf listen
 * --source does, so a restore of any shard replays at most about that much of its stream.
 */
const scope = testScope();

describe('rf listen --cluster --base-every', () => {
  it('takes fresh bases of every shard; a restore after one starts from it', async () => {
    const cluster = await startCluster(3, 0);
    scope.defer(() => cluster.stop());
    const masters = cluster.nodes.slice(0, 3);
    // One hash tag per master: every shard has writes of its own.
    const tags = await Promise.all(masters.map((m) => tagServedBy(cluster, m, 'b')));
    const clients = await Promise.all(masters.map((m) => m.client()));
    let writing = true;
    let rounds = 0;
    const load = (async () => {
      while (writing) {
        await Promise.all(
          clients.map((c, j) => c.call('SET', `k:${rounds % 50}{${tags[j]}}`, `v${rounds}`)),
        );
        rounds++;
      }
    })();
    scope.defer(async () => {
      writing = false;
      await load;
    });

    const store = await scope.storeDir();
    const d = scope.daemon(
      clusterListenArgs(cluster.url, store, '--base-every', '1s', '--metrics', '127.0.0.1:0'),
    );
    const found = await d.waitForLog((l) => l.msg === 'cluster topology found');
    const shards = found.shards as Array<{ id: string; source: string }>;
    expect(shards).toHaveLength(3);
    const url = String((await d.waitForLog((l) => l.msg === 'metrics listening')).metrics);
    const fresh = new Map<string, number>();
    for (const s of shards) {
      const taken = await d.waitForLog(
        (l) => l.shard === s.id && l.msg === 'fresh base taken',
        60_000,
      );
      // Past the first snapshot: the stream had gone on when it was taken.
      expect(Number(taken.offset), s.id).toBeGreaterThan(0);
      fresh.set(s.source, Number(taken.offset));
    }
    const atFresh = rounds;
    await waitFor(() => rounds > atFresh + 50, 'the writes to go on', 30_000);
    writing = false;
    await load;

    const all = await scrape(url);
    for (const s of shards) {
      const of = (name: string) => all.find((x) => x.name === name && x.labels.shard === s.source);
      expect(of('rf_base_interval_seconds')?.value, s.source).toBe(1);
      expect(of('rf_base_age_seconds')?.value, s.source).toBeGreaterThanOrEqual(0);
      expect(of('rf_base_age_seconds')?.value, s.source).toBeLessThan(60);
    }

    // A restore of each shard now starts from a fresh base, not from the first snapshot.
    for (const s of shards) {
      const res = await rf(
        [
          'restore',
          '--store',
          store,
          '--name',
          s.source,
          '--until',
          'latest',
          '--dry-run',
          '--json',
        ],
        { timeoutMs: 60_000 },
      );
      expect(res.code, res.stderr).toBe(0);
      const base = JSON.parse(res.stdout).base as { offset: number };
      expect(base.offset, s.source).toBeGreaterThanOrEqual(fresh.get(s.source)!);
    }
    expect((await d.stop()).code).toBe(0);
  }, 120_000);
});
