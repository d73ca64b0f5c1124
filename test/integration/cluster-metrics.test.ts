import { describe, expect, it } from 'vitest';
import { clusterListenArgs, startCluster } from '../helpers/cluster.js';
import { waitFor } from '../helpers/load.js';
import { testScope } from '../helpers/scope.js';
import { parseSamples } from '../helpers/scrape.js';

/**
 * rf listen --cluster --metrics: one daemon serves every shard's series, each labelled with the
 * shard's source name, so one shard whose master goes away shows (and alerts) on its own.
 */
const scope = testScope();

const samples = parseSamples;

describe('rf listen --cluster --metrics', () => {
  it('serves each shard’s series under a shard label; a shard that loses its master shows alone', async () => {
    const cluster = await startCluster(3, 0);
    scope.defer(() => cluster.stop());
    const store = await scope.storeDir();
    const d = scope.daemon(clusterListenArgs(cluster.url, store, '--metrics', '127.0.0.1:0'));
    const found = await d.waitForLog((l) => l.msg === 'cluster topology found');
    const shards = found.shards as Array<{ id: string; source: string; master: string }>;
    expect(shards).toHaveLength(3);
    const url = String((await d.waitForLog((l) => l.msg === 'metrics listening')).metrics);

    const connected = async () =>
      new Map(
        samples(await (await fetch(url)).text())
          .filter((s) => s.name === 'rf_connected')
          .map((s) => [s.labels.shard, s.value]),
      );
    await waitFor(
      async () => [...(await connected()).values()].filter((v) => v === 1).length === 3,
      'every shard to stream',
      60_000,
    );
    const text = await (await fetch(url)).text();
    const all = samples(text);
    // Each of these is a shard's: one per shard, no unlabelled one.
    for (const name of [
      'rf_connected',
      'rf_timeline',
      'rf_durable_offset',
      'rf_reconnects_total',
      'rf_restorable_from_timestamp_seconds',
      'rf_restorable_until_timestamp_seconds',
      'rf_gaps',
      'rf_master_offset',
      'rf_replication_lag_bytes',
    ]) {
      const of = all.filter((s) => s.name === name);
      expect(of.map((s) => s.labels.shard).sort(), name).toEqual(
        shards.map((s) => s.source).sort(),
      );
    }
    expect(all.filter((s) => s.name === 'rf_timeline').every((s) => s.value >= 1)).toBe(true);
    // Each shard's master is sampled: on this idle cluster rf holds all it has, on every shard.
    await waitFor(
      async () =>
        samples(await (await fetch(url)).text()).filter(
          (s) => s.name === 'rf_replication_lag_bytes' && s.value === 0,
        ).length === 3,
      'every shard’s lag to be 0',
      60_000,
    );
    expect(all.find((s) => s.name === 'rf_store_filesystem_avail_bytes')!.value).toBeGreaterThan(0);

    // The master of one shard goes away (no replica to take over): that shard alone drops.
    const victim = shards[1]!;
    const node = cluster.nodes.find((n) => `${n.host}:${n.port}` === victim.master);
    expect(node, victim.master).toBeDefined();
    await node!.kill('SIGKILL');
    await waitFor(
      async () => {
        const now = await connected();
        return now.get(victim.source) === 0;
      },
      `rf_connected{shard="${victim.source}"} to be 0`,
      60_000,
    );
    const after = await connected();
    for (const s of shards)
      if (s.source !== victim.source) expect(after.get(s.source), s.source).toBe(1);
    // The failed reconnects are counted, by code and for the shard.
    await waitFor(
      async () => {
        const now = samples(await (await fetch(url)).text());
        return (
          now.some((s) => s.name === 'rf_errors_total' && s.value > 0) &&
          now.some(
            (s) =>
              s.name === 'rf_reconnects_total' && s.labels.shard === victim.source && s.value > 0,
          )
        );
      },
      'the errors and the reconnects of the lost shard',
      60_000,
    );
    expect((await d.stop()).code).toBe(0);
  }, 180_000);
});
