import { describe, expect, it } from 'vitest';
import { slotOf } from '../../src/replication/cluster-topology.js';
import { startCluster, tagServedBy } from '../helpers/cluster.js';
import { ClusterProbe } from '../helpers/cluster-probe.js';
import { rf } from '../helpers/rf.js';
import { testScope } from '../helpers/scope.js';

/**
 * "Who changed K" on a cluster must not depend on when rf last read the topology: while a slot
 * migrates, the importing shard takes K (RESTORE-ASKING) and then writes sent with ASKING before
 * any CLUSTER SHARDS names it as the slot's owner, and a migration can be abandoned
 * (SETSLOT STABLE) without the importing shard ever owning it.
 */
const scope = testScope();

interface LogJson {
  source: string;
  command: string;
  args: unknown[];
  time: string;
}

describe('rf log --key on a cluster while a slot migrates', () => {
  it('finds the writes the importing shard took before it owned the slot', async () => {
    const cluster = await startCluster(3, 0);
    scope.defer(() => cluster.stop());
    const store = await scope.storeDir();
    const probe = new ClusterProbe(cluster, store, store, 'c', 1);
    scope.defer(() => probe.close());
    const daemon = await probe.startDaemon(3);
    scope.defer(() => daemon.stop('SIGKILL'));

    const [a, b] = cluster.nodes as [(typeof cluster.nodes)[0], (typeof cluster.nodes)[0]];
    const tag = await tagServedBy(cluster, a, 'mig');
    const slot = String(slotOf(tag));
    const key = `{${tag}}:k`;
    const [ac, bc] = [await probe.clientOf(a), await probe.clientOf(b)];
    const idOf = async (c: typeof ac) => String(await c.call('CLUSTER', 'MYID'));

    await ac.call('SET', key, 'v0');
    await bc.call('CLUSTER', 'SETSLOT', slot, 'IMPORTING', await idOf(ac));
    await ac.call('CLUSTER', 'SETSLOT', slot, 'MIGRATING', await idOf(bc));
    await ac.call('MIGRATE', '127.0.0.1', String(b.port), '', '0', '10000', 'KEYS', key);
    await bc.call('ASKING');
    await bc.call('SET', key, 'v1');
    // Abandoned: the slot stays with its first owner; the copy on the importing shard is left.
    await bc.call('CLUSTER', 'SETSLOT', slot, 'STABLE');
    await ac.call('CLUSTER', 'SETSLOT', slot, 'STABLE');
    await probe.allAcked();

    const res = await rf(['log', '--store', store, '--name', 'c', '--key', key, '--json']);
    expect(res.code, res.stderr).toBe(0);
    const writes = res.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as LogJson);
    const seen = writes.map((w) => `${w.command} ${String(w.args[1] ?? '')}`.trim());
    // Two shards' streams, merged by their stamps: writes of different shards stamped in the
    // same millisecond (or read by rf in either order) have no order between them, so each
    // shard's writes are checked in its own order, and the merge by time.
    expect([...seen].sort()).toEqual(['DEL', 'RESTORE-ASKING 0', 'SET v0', 'SET v1']);
    const first = writes.find((w) => w.command === 'SET' && w.args[1] === 'v0')!.source;
    const importer = writes.find((w) => w.command === 'RESTORE-ASKING')!.source;
    expect(importer).not.toBe(first);
    const of = (source: string) =>
      writes
        .filter((w) => w.source === source)
        .map((w) => `${w.command} ${String(w.args[1] ?? '')}`.trim());
    expect(of(first)).toEqual(['SET v0', 'DEL']);
    expect(of(importer)).toEqual(['RESTORE-ASKING 0', 'SET v1']);
    const times = writes.map((w) => Date.parse(w.time));
    expect(times).toEqual([...times].sort((x, y) => x - y));
  }, 180_000);
});
