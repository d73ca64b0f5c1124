import { existsSync } from 'node:fs';
import { cp, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/logger.js';
import { slotOf } from '../../src/replication/cluster-topology.js';
import { RF_ACL_RULES } from '../../src/replication/handshake.js';
import { pruneShards, retainedRecord } from '../../src/retention/prune-cluster.js';
import { readCluster, writeCluster } from '../../src/store/cluster.js';
import { Store } from '../../src/store/store.js';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { ClusterProbe, type Moment, tagsWhere } from '../helpers/cluster-probe.js';
import { waitFor } from '../helpers/load.js';
import type { RedisServer } from '../helpers/redis.js';
import { RfDaemon, rf } from '../helpers/rf.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

/**
 * rf listen --cluster while the cluster changes shape: `redis-cli --cluster reshard` of a few
 * hundred slots with writes going on, a slot caught half migrated, a key held by two shards in
 * the middle of its MIGRATE, a fourth master added and given slots, then left with none. Every
 * recorded moment is restored with --out (each shard booted) and --into an empty standalone, and
 * must give exactly the content the cluster had, also once retention has pruned to a window that
 * starts after the added master gave its slots away.
 */

let cluster: TestCluster;
let probe: ClusterProbe;
let work: string;
let store: string;
let daemon: RfDaemon;
const moments: Moment[] = [];
/** After slots went to the added master, and after it gave them all away: retention's moments. */
const shaped: Moment[] = [];
/** Masters that gained a real replica besides rf, by port. */
const extraReplicas = new Map<number, number>();

// Slots 0..299 are the ones the first reshard moves (redis-cli takes a source's lowest slots).
const MOVED_TAGS = tagsWhere(6, (s) => s < 300, 'm');
const OTHER_TAGS = tagsWhere(12, (s) => s >= 300, 'o');
const TAGS = [...MOVED_TAGS, ...OTHER_TAGS];

const writeRound = (round: number) => probe.writeRound(round, TAGS);

/** Single-key writes, routed through MOVED/ASK, until `stop` resolves: load during a reshard. */
async function writeWhile(stop: Promise<unknown>): Promise<number> {
  let done = false;
  void stop.finally(() => (done = true));
  let n = 0;
  while (!done) {
    const tag = TAGS[n % TAGS.length]!;
    await probe.routed(tag, 'INCR', `${tag}:live`);
    await probe.routed(tag, 'SET', `${tag}:w${n % 5}`, String(n));
    n++;
  }
  return n;
}

const id = async (n: RedisServer) =>
  String(await (await probe.clientOf(n)).call('CLUSTER', 'MYID'));

/** rf's latest record of the slot owners matches the cluster's (CLUSTER SHARDS of a master). */
async function recordCaughtUp(): Promise<void> {
  await waitFor(
    async () => {
      const res = await rf(['info', '--store', store, '--json']);
      if (res.code !== 0) return false;
      const c = (
        JSON.parse(res.stdout) as {
          clusters: Array<{ shards: Array<{ master: string; slots: number[][] }> }>;
        }
      ).clusters[0]!;
      const mine = new Map(
        c.shards.filter((s) => s.slots.length > 0).map((s) => [s.master, JSON.stringify(s.slots)]),
      );
      const ranges = (await (
        await probe.clientOf(cluster.nodes[0]!)
      ).call('CLUSTER', 'SLOTS')) as Array<[number, number, [string, number]]>;
      const theirs = new Map<string, number[][]>();
      for (const [a, b, [, port]] of ranges) {
        const k = `127.0.0.1:${port}`;
        theirs.set(k, [...(theirs.get(k) ?? []), [a, b]]);
      }
      if (theirs.size !== mine.size) return false;
      for (const [k, slots] of theirs) {
        const merged = slots
          .sort((x, y) => x[0]! - y[0]!)
          .reduce<number[][]>((acc, r) => {
            const last = acc.at(-1);
            if (last !== undefined && r[0]! === last[1]! + 1) last[1] = r[1]!;
            else acc.push([...r]);
            return acc;
          }, []);
        if (mine.get(k) !== JSON.stringify(merged)) return false;
      }
      return true;
    },
    "rf's record of the slot owners to match the cluster's",
    60_000,
    500,
  );
}

async function expectRestoredExactly(m: Moment): Promise<void> {
  const out = await probe.restoredOut(m.t);
  expect(out.content, `--out at ${m.label}`).toEqual(m.content);
  expect(await probe.restoredInto(m.t), `--into at ${m.label}`).toEqual(m.content);
}

beforeAll(async () => {
  cluster = await startCluster(3, 0);
  work = await makeTempDir('rf-cluster-reshard-');
  store = path.join(work, 'store');
  probe = new ClusterProbe(cluster, store, work, 'r', (m) => 1 + (extraReplicas.get(m.port) ?? 0));
  daemon = await probe.startDaemon(3);
}, 180_000);

afterAll(async () => {
  await daemon?.stop();
  await probe?.close();
  await cluster?.stop();
  if (work) await removeTempDir(work);
});

describe('rf listen --cluster through resharding', () => {
  it('restores before, during and after a reshard of 300 slots under writes', async () => {
    await writeRound(0);
    moments.push(await probe.checkpoint('before the reshard', TAGS));
    const [from, to] = [await cluster.ownerOf(0), await cluster.ownerOf(16383)];
    expect(from.port).not.toBe(to.port);
    const resharded = cluster.reshard(from, to, 300);
    const writes = await writeWhile(resharded);
    await resharded;
    expect(writes).toBeGreaterThan(0);
    for (const tag of MOVED_TAGS) expect((await cluster.ownerOf(slotOf(tag))).port).toBe(to.port);
    await writeRound(1);
    await recordCaughtUp();
    moments.push(await probe.checkpoint('after the reshard', TAGS));

    // One slot caught half way: some of its keys moved, the rest not yet.
    const tag = OTHER_TAGS[0]!;
    const slot = slotOf(tag);
    const owner = await cluster.ownerOf(slot);
    const target = cluster.nodes.find((n) => n.port !== owner.port && n.pid !== undefined)!;
    const [oc, tc] = [await probe.clientOf(owner), await probe.clientOf(target)];
    await tc.call('CLUSTER', 'SETSLOT', String(slot), 'IMPORTING', await id(owner));
    await oc.call('CLUSTER', 'SETSLOT', String(slot), 'MIGRATING', await id(target));
    const keys = (
      (await oc.call('CLUSTER', 'GETKEYSINSLOT', String(slot), '100')) as unknown[]
    ).map(String);
    expect(keys.length).toBeGreaterThanOrEqual(6);
    const half = keys.slice(0, 3);
    await oc.call('MIGRATE', '127.0.0.1', String(target.port), '', '0', '10000', 'KEYS', ...half);
    const split = await probe.checkpoint(
      'a slot half migrated',
      OTHER_TAGS.filter((t) => t !== tag),
    );
    moments.push(split);
    for (const k of half) expect(split.content.has(k)).toBe(true);

    // A key in the middle of its MIGRATE: RESTORE-ASKING on the target done, DEL on the source
    // not yet (what MIGRATE does between its two steps, held open here).
    const [inFlight] = keys.slice(3, 4) as [string];
    const raw = await owner.client({ returnBuffers: true });
    const dump = (await raw.call('DUMP', inFlight)) as Buffer;
    await raw.close();
    const expireAt = Number(await oc.call('PEXPIRETIME', inFlight));
    await tc.call('RESTORE-ASKING', inFlight, String(Math.max(expireAt, 0)), dump, 'ABSTTL');
    const both = await probe.checkpoint(
      'a key held by both shards',
      OTHER_TAGS.filter((t) => t !== tag),
    );
    moments.push(both);
    expect(both.content.has(inFlight)).toBe(true);
    await oc.call('DEL', inFlight);
    await oc.call(
      'MIGRATE',
      '127.0.0.1',
      String(target.port),
      '',
      '0',
      '10000',
      'KEYS',
      ...keys.slice(4),
    );
    for (const n of cluster.nodes.filter((x) => x.pid !== undefined))
      await (await probe.clientOf(n)).call(
        'CLUSTER',
        'SETSLOT',
        String(slot),
        'NODE',
        await id(target),
      );
    await cluster.settled();
    await writeRound(2);
    await recordCaughtUp();
    moments.push(await probe.checkpoint('after the slot moved', TAGS));

    for (const m of moments) await expectRestoredExactly(m);
  }, 400_000);

  it('captures an added master from its first snapshot, and keeps one that gave its slots away', async () => {
    const mark = daemon.lines.length;
    const added = await cluster.addMaster();
    await cluster.settled(4);
    // rf finds the fourth master on a topology refresh and takes its first snapshot.
    await daemon.waitForLog((l) => l.msg === 'first timeline started from the base', 60_000, mark);
    const giver = await cluster.ownerOf(0);
    const given = cluster.reshard(giver, added, 200);
    expect(await writeWhile(given)).toBeGreaterThan(0);
    await given;
    const moved = MOVED_TAGS.filter((t) => slotOf(t) < 200);
    expect(moved.length).toBeGreaterThan(0);
    for (const tag of moved) expect((await cluster.ownerOf(slotOf(tag))).port).toBe(added.port);
    await writeRound(3);
    // No wait for rf's record here: T may come before the topology refresh that shows the new
    // owner, and the added shard must be restored all the same.
    const gained = await probe.checkpoint('after slots went to the added master', TAGS);
    const out = await probe.restoredOut(gained.t);
    expect(out.content).toEqual(gained.content);
    expect(out.manifest.shards).toHaveLength(4);
    expect(await probe.restoredInto(gained.t)).toEqual(gained.content);

    const back = cluster.reshard(added, giver, 200);
    expect(await writeWhile(back)).toBeGreaterThan(0);
    await back;
    // A master left without slots becomes a replica of the one that took its last slot
    // (cluster-allow-replica-migration): rf must stop archiving it as a shard of its own.
    await waitFor(
      async () =>
        String(((await (await probe.clientOf(added)).call('ROLE')) as unknown[])[0]) === 'slave',
      `${added.port} to turn replica of ${giver.port}`,
      30_000,
    );
    extraReplicas.set(giver.port, 1);
    await cluster.settled();
    await writeRound(4);
    await recordCaughtUp();
    const emptied = await probe.checkpoint('after the added master gave all its slots away', TAGS);
    shaped.push(gained, emptied);
    const after = await probe.restoredOut(emptied.t);
    expect(after.content).toEqual(emptied.content);
    expect(after.manifest.shards).toHaveLength(3);
    expect(await probe.restoredInto(emptied.t)).toEqual(emptied.content);
    // The shard that owns nothing now is kept: a restore before it gave its slots away has it.
    const again = await probe.restoredOut(gained.t);
    expect(again.content).toEqual(gained.content);
    expect(again.manifest.shards).toHaveLength(4);
    const info = JSON.parse(
      (await rf(['info', '--store', store, '--name', 'r', '--json'])).stdout,
    ) as {
      clusters: Array<{
        shards: Array<{ master: string; slots: number[][]; timelines: unknown[] }>;
        restorable: Array<{ from: string; until: string }>;
      }>;
    };
    const shard = info.clusters[0]!.shards.find((s) => s.master === `127.0.0.1:${added.port}`)!;
    expect(shard.slots).toEqual([]);
    expect(shard.timelines).toHaveLength(1);
    // Its archive ends where it gave its slots away; the cluster's restorable range goes on.
    for (const m of [gained, emptied]) {
      expect(
        info.clusters[0]!.restorable.some(
          (r) => Date.parse(r.from) <= m.t && m.t <= Date.parse(r.until),
        ),
        `${m.label} in ${JSON.stringify(info.clusters[0]!.restorable)}`,
      ).toBe(true);
    }
  }, 400_000);

  it('rf log --key finds a key across the shards that held its slot, and rf verify checks them all', async () => {
    // {m60} lived on its first owner, then (first reshard) on another, then on the added master,
    // then back: rf log of the cluster reads each shard that owned the slot, in time order.
    const tag = MOVED_TAGS.find((t) => slotOf(t) < 200)!;
    const res = await rf(['log', '--store', store, '--name', 'r', '--key', `${tag}:s`, '--json']);
    expect(res.code, res.stderr).toBe(0);
    const writes = res.stdout
      .trim()
      .split('\n')
      .map(
        (l) => JSON.parse(l) as { source: string; command: string; args: unknown[]; time: string },
      );
    const sets = writes.filter((w) => w.command === 'SET');
    expect(sets.map((w) => w.args[1])).toEqual(['v0', 'v1', 'v2', 'v3', 'v4']);
    expect(new Set(sets.map((w) => w.source)).size).toBe(3);
    const times = writes.map((w) => Date.parse(w.time));
    expect(times).toEqual([...times].sort((a, b) => a - b));

    const verify = await rf(['verify', '--store', store, '--name', 'r', '--json'], {
      timeoutMs: 120_000,
    });
    expect(verify.code, verify.stderr).toBe(0);
    const report = JSON.parse(verify.stdout) as {
      clean: boolean;
      sources: Array<{ name: string }>;
    };
    expect(report.clean).toBe(true);
    expect(report.sources).toHaveLength(4);
    expect(report.sources.every((s) => s.name.startsWith('r.'))).toBe(true);
  }, 180_000);

  it('--retain to a window after the added master gave its slots away keeps every restore in it', async () => {
    const [gained, emptied] = shaped as [Moment, Moment];
    for (const tag of TAGS) await probe.routed(tag, 'INCR', `${tag}:retained`);
    const later = await probe.checkpoint('after the window start', TAGS);
    await waitFor(
      async () => {
        const info = JSON.parse((await rf(['info', '--store', store, '--json'])).stdout);
        const until = info.clusters[0].restorable.at(-1)?.until ?? '1970-01-01T00:00:00Z';
        return Date.parse(until) >= later.t;
      },
      'the cluster restorable to reach the last moment',
      30_000,
      250,
    );
    // Pruned on a copy, as rf listen --retain would once the window starts at `emptied`; the
    // daemon goes on with the original for the tests after this one.
    expect((await daemon.stop()).code).toBe(0);
    const pruned = path.join(work, 'pruned');
    await cp(store, pruned, { recursive: true });
    daemon = RfDaemon.start([
      '--cluster',
      '--source',
      cluster.url,
      '--store',
      store,
      '--name',
      'r',
      '--flush-interval',
      '10',
    ]);
    const s = await Store.open(pruned, { create: false });
    const all = (await readCluster(s, 'r'))!;
    const record = retainedRecord(all, emptied.t, 60_000, Date.now());
    await writeCluster(s, record);
    // The MIGRATE look-back kept before the window, shortened to this test's seconds.
    const result = await pruneShards(s, record.shards, emptied.t, 60_000, silentLogger(), 1_000);
    await s.close();
    // No shard has a base newer than its first snapshot here: a restore at the window's start
    // replays each stream from it, so no segment may go (the slot changes before it do).
    expect(result.segmentsDeleted).toBe(0);
    expect(record.slots.length).toBeLessThan(all.slots.length);

    const restores = path.join(work, 'pruned-restores');
    await mkdir(restores);
    const p = new ClusterProbe(cluster, pruned, restores, 'r', 1);
    try {
      const out = await p.restoredOut(emptied.t);
      expect(out.content).toEqual(emptied.content);
      expect(out.manifest.shards).toHaveLength(3);
      expect(await p.restoredInto(emptied.t)).toEqual(emptied.content);
      expect((await p.restoredOut(later.t)).content).toEqual(later.content);
      // Before the window: refused, though the shard that gave its slots away keeps its archive.
      const refused = await p.restore(gained.t, '--out', path.join(restores, 'refused'));
      expect(refused.code).toBe(2);
      expect(JSON.parse(refused.stdout).error.code).toBe('RF_TIME_OUT_OF_RANGE');
      expect(existsSync(path.join(restores, 'refused'))).toBe(false);
      const info = JSON.parse(
        (await rf(['info', '--store', pruned, '--name', 'r', '--json'])).stdout,
      );
      const c = info.clusters[0] as {
        shards: Array<{ slots: number[][]; timelines: unknown[] }>;
        restorable: Array<{ from: string }>;
        retention: { windowStart: string };
      };
      expect(Date.parse(c.retention.windowStart)).toBe(emptied.t);
      expect(Date.parse(c.restorable[0]!.from)).toBe(emptied.t);
      expect(c.shards).toHaveLength(4);
      expect(c.shards.filter((x) => x.slots.length === 0 && x.timelines.length === 1)).toHaveLength(
        1,
      );
      const verify = await rf(['verify', '--store', pruned, '--name', 'r'], { timeoutMs: 120_000 });
      expect(verify.code, `${verify.stdout}\n${verify.stderr}`).toBe(0);
    } finally {
      await p.close();
    }
    // The daemon is back on every shard before the next test writes.
    await probe.allAcked();
  }, 300_000);

  it('captures what is served while slots have no owner, and refuses a restore at such a T', async () => {
    // 100 slots no test key hashes to, taken from every node: nobody serves them.
    const used = new Set(TAGS.map((t) => slotOf(t)));
    let from = 16000;
    while ([...Array(100).keys()].some((i) => used.has(from + i))) from -= 100;
    const to = from + 99;
    const owner = await cluster.ownerOf(from);
    const live = cluster.nodes.filter((n) => n.pid !== undefined);
    const mark = daemon.lines.length;
    for (const n of live) {
      const c = await probe.clientOf(n);
      await c.call('CONFIG', 'SET', 'cluster-require-full-coverage', 'no');
      await c.call('CLUSTER', 'DELSLOTSRANGE', String(from), String(to));
    }
    const warned = await daemon.waitForLog(
      (l) => l.msg === 'slots with no master: their writes are not being captured',
      60_000,
      mark,
    );
    expect(warned.slots).toEqual([[from, to]]);
    await writeRound(5);
    const uncovered = await probe.checkpoint('slots without an owner', TAGS);
    const out = path.join(work, 'unowned');
    const res = await rf([
      'restore',
      '--store',
      store,
      '--name',
      'r',
      '--until',
      `@${uncovered.t / 1000}`,
      '--out',
      out,
    ]);
    expect(res.code, res.stderr).toBe(2);
    expect(res.stderr).toContain('RF_SLOTS_UNOWNED');
    expect(res.stderr).toContain(`${from}-${to}`);
    expect(existsSync(out)).toBe(false);

    // Given back to their owner, the cluster is whole again and so are its restores.
    await (await probe.clientOf(owner)).call('CLUSTER', 'ADDSLOTSRANGE', String(from), String(to));
    await cluster.settled();
    await recordCaughtUp();
    await writeRound(6);
    const whole = await probe.checkpoint('slots owned again', TAGS);
    await expectRestoredExactly(whole);
  }, 240_000);

  it('refuses a user without the cluster grants by name, and takes the rf doctor line as enough', async () => {
    const live = cluster.nodes.filter((n) => n.pid !== undefined);
    const rules = RF_ACL_RULES.split(' ');
    const lacking = rules.filter((r) => !r.startsWith('+cluster|'));
    expect(lacking.length).toBeLessThan(rules.length);
    // ACL users are per node: a cluster needs them on every one.
    for (const n of live) {
      const c = await probe.clientOf(n);
      await c.call(
        'ACL',
        'SETUSER',
        'rfless',
        'on',
        '>pw-less',
        'resetkeys',
        'resetchannels',
        ...lacking,
      );
      await c.call(
        'ACL',
        'SETUSER',
        'rfuser',
        'on',
        '>pw-rf',
        'resetkeys',
        'resetchannels',
        ...rules,
      );
    }
    const seed = `redis://rfless@127.0.0.1:${live[0]!.port}`;
    const refusedDir = path.join(work, 'acl-refused');
    const res = await rf(['listen', '--cluster', '--source', seed, '--store', refusedDir], {
      env: { RF_PASSWORD: 'pw-less' },
    });
    expect(res.code, res.stderr).toBe(3);
    expect(res.stderr).toContain('RF_AUTH');
    expect(res.stderr).toContain('CLUSTER SHARDS');
    expect(res.stderr).toContain('+cluster|shards');
    expect(res.stderr).not.toContain('pw-less');
    expect(existsSync(refusedDir)).toBe(false);

    const doctor = await rf(['doctor', '--source', live[0]!.url, '--json']);
    expect(doctor.stdout).toContain(RF_ACL_RULES);
    const enough = RfDaemon.start(
      [
        '--cluster',
        '--source',
        `redis://rfuser@127.0.0.1:${live[0]!.port}`,
        '--store',
        path.join(work, 'acl-ok'),
        '--name',
        'a',
      ],
      { RF_PASSWORD: 'pw-rf' },
    );
    try {
      await waitFor(
        () =>
          enough.lines.filter((l) => l.msg === 'first timeline started from the base').length === 3,
        'a first base from each shard as the least-privilege user',
        90_000,
      ).catch((err: Error) => {
        throw new Error(`${err.message}\n${enough.output}`);
      });
    } finally {
      await enough.stop();
    }
  }, 180_000);
});
