import { describe, expect, it } from 'vitest';
import { LIVE_TOLERANCE_MS } from '../../src/bounds/windows.js';
import { clusterListenArgs, startCluster, tagServedBy } from '../helpers/cluster.js';
import { waitFor } from '../helpers/load.js';
import { testScope } from '../helpers/scope.js';
import { scrape } from '../helpers/scrape.js';
import { expectTimesBoundSends, StampedCounter, storedCounters } from '../helpers/stamped.js';

/**
 * rf listen --cluster samples each shard's master as rf listen --source samples its one master:
 * writes a shard's master buffers while its snapshot is slowed keep the time they were sent
 * (not the time rf received them), and each shard exports its master's offset and lag.
 */
const scope = testScope();

/** Send to capture on loopback, with room for a busy machine (as times-late.test.ts). */
const LATENCY_MS = 25;

describe('rf listen --cluster: the master watch per shard', () => {
  it('a shard whose snapshot is slowed keeps its writes’ send times; every shard exports its lag', async () => {
    const cluster = await startCluster(3, 0);
    scope.defer(() => cluster.stop());
    const slow = cluster.nodes[0]!;
    const c = await slow.client();
    // Every key below lives on the slow node's shard.
    const tag = await tagServedBy(cluster, slow);
    for (let b = 0; b < 40; b++) {
      const args: string[] = [];
      for (let k = 0; k < 1000; k++) args.push(`base:${b * 1000 + k}{${tag}}`, 'x'.repeat(100));
      await c.call('MSET', ...args);
    }
    // Each key costs the snapshot 100 µs (a testing knob of Redis): a transfer of about 4 s.
    await c.call('CONFIG', 'SET', 'rdb-key-save-delay', '100');
    const ctr = new StampedCounter(c, 5, '', `:{${tag}}`);
    ctr.start();
    scope.defer(() => ctr.stop().then(() => undefined));
    await waitFor(() => ctr.sent > 50, 'the counter to run');

    const store = await scope.storeDir();
    const d = scope.daemon(
      clusterListenArgs(cluster.url, store, '--flush-interval', '20', '--metrics', '127.0.0.1:0'),
    );
    const found = await d.waitForLog((l) => l.msg === 'cluster topology found');
    const shards = found.shards as Array<{ id: string; source: string; master: string }>;
    expect(shards).toHaveLength(3);
    const victim = shards.find((s) => s.master === `${slow.host}:${slow.port}`);
    expect(victim, JSON.stringify(shards)).toBeDefined();
    const url = String((await d.waitForLog((l) => l.msg === 'metrics listening')).metrics);
    const began = await d.waitForLog(
      (l) => l.shard === victim!.id && l.msg.startsWith('full resync (+FULLRESYNC)'),
      60_000,
    );
    const loaded = await d.waitForLog(
      (l) => l.shard === victim!.id && l.msg === 'first timeline started from the base',
      60_000,
    );
    expect(Number(loaded.time) - Number(began.time)).toBeGreaterThan(2000);
    const atBase = ctr.sent;
    await waitFor(() => ctr.sent > atBase + 200, 'the counter to run on', 30_000);

    // Under the load: every shard's master offset and lag, and the loaded one's bounded by what
    // its master says after the scrape.
    const under = await scrape(url);
    const after = Number((await c.info('replication')).master_repl_offset);
    for (const name of [
      'rf_master_offset',
      'rf_replication_lag_bytes',
      'rf_replication_lag_seconds',
    ])
      expect(
        under
          .filter((s) => s.name === name)
          .map((s) => s.labels.shard)
          .sort(),
        name,
      ).toEqual(shards.map((s) => s.source).sort());
    const of = (name: string) =>
      under.find((s) => s.name === name && s.labels.shard === victim!.source)!;
    expect(of('rf_master_offset').value).toBeGreaterThan(0);
    expect(of('rf_master_offset').value).toBeLessThanOrEqual(after);
    expect(of('rf_replication_lag_bytes').value).toBeGreaterThanOrEqual(0);
    expect(of('rf_replication_lag_bytes').value).toBeLessThan(16 * 1024 * 1024);
    expect(of('rf_replication_lag_seconds').value).toBeGreaterThanOrEqual(0);

    const count = await ctr.stop();
    await c.call('CONFIG', 'SET', 'rdb-key-save-delay', '0');
    // Caught up: the lag series fall to 0 on every shard.
    await waitFor(
      async () =>
        (await scrape(url)).filter((s) => s.name === 'rf_replication_lag_bytes' && s.value === 0)
          .length === 3,
      'every shard’s lag to be 0',
      60_000,
    );

    const stored = await storedCounters(store, 'c');
    // Those sent before the fork are in the base; every later one is in the stream.
    const first = Math.min(...stored.keys());
    expect(stored.size).toBe(count - first);
    // The master buffered these while the slowed snapshot went to rf: the case in question.
    const buffered = [...stored.keys()].filter(
      (i) => ctr.sentAt[i]! > Number(began.time) && ctr.sentAt[i]! < Number(loaded.time) - 1000,
    );
    expect(buffered.length).toBeGreaterThan(100);
    expectTimesBoundSends(ctr.sentAt, stored, LATENCY_MS);
    // The master's offset clock went on during the transfer: times to the sample, none late.
    for (const [i, s] of stored) {
      expect(s.late, `ctr:${i} marked late`).toBeNull();
      expect(s.time - ctr.sentAt[i]!, `ctr:${i} stored late`).toBeLessThanOrEqual(
        LIVE_TOLERANCE_MS,
      );
    }
    expect((await d.stop()).code).toBe(0);
  }, 120_000);
});
