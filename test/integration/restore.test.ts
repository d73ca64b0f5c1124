import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RedisClient } from '../../src/resp/client.js';
import { bootedDigest, type RedisServer, startRedis } from '../helpers/redis.js';
import { hasFeature } from '../helpers/redis-bin.js';
import { aofCaughtUp, RfDaemon, rf } from '../helpers/rf.js';
import { caughtUp } from '../helpers/scope.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';
import { workloadPhase } from '../helpers/workload.js';

/**
 * The digest oracle: at several checkpoints the writes pause, the master's DEBUG DIGEST and the
 * time are recorded, and `rf restore --until <checkpoint>` must give exactly that digest, booted
 * from --out and loaded through --target.
 */

interface Checkpoint {
  at: string;
  digest: string;
  keys: number;
}

let master: RedisServer;
let client: RedisClient;
let work: string;
let store: string;
let daemon: RfDaemon;
const checkpoints: Checkpoint[] = [];

async function keyCount(c: RedisClient): Promise<number> {
  const info = await c.info('keyspace');
  return Object.values(info).reduce((n, v) => n + Number(/keys=(\d+)/.exec(v)?.[1] ?? 0), 0);
}

async function checkpoint(): Promise<void> {
  await caughtUp(master);
  const digest = String(await client.call('DEBUG', 'DIGEST'));
  const keys = await keyCount(client);
  // Capture times are stamped when rf receives a write: everything acknowledged is before now.
  const now = Date.now();
  checkpoints.push({ at: new Date(now).toISOString(), digest, keys });
  // The AOF's #TS annotations have second precision: resume writing in the next second.
  await new Promise((r) => setTimeout(r, 1000 - (now % 1000) + 20));
}

beforeAll(async () => {
  master = await startRedis({
    args: [
      '--repl-diskless-sync-delay',
      '0',
      '--appendonly',
      'yes',
      // Redis 6 has no AOF timestamps; its AOF record then has chunk precision.
      ...(hasFeature('AOF timestamps') ? ['--aof-timestamp-enabled', 'yes'] : []),
    ],
  });
  client = await master.client();
  work = await makeTempDir('rf-restore-');
  store = path.join(work, 'store');
  // Something in the base already, so restores start from a non-empty snapshot, and enough of
  // it that a target with a load delay takes over a second to load it.
  await workloadPhase(client, 0);
  // (MSET, not DEBUG POPULATE: the AOF must hold them too.)
  for (let batch = 0; batch < 30; batch++) {
    const args: string[] = [];
    // Random values: the RDB compresses repetitive ones below the 2 MB that matter here.
    for (let i = 0; i < 1000; i++) args.push(`bulk:${batch}:${i}`, randomBytes(60).toString('hex'));
    await client.call('MSET', ...args);
  }
  daemon = RfDaemon.start([
    '--source',
    master.url,
    '--store',
    store,
    '--flush-interval',
    '20',
    '--aof-dir',
    master.dir,
    '--chunk-size',
    '4k',
    '--rewrite-at',
    'off',
  ]);
  await daemon.waitForLog((l) => l.msg === 'first timeline started from the base');
  for (let phase = 1; phase <= 3; phase++) {
    await workloadPhase(client, phase);
    await checkpoint();
  }
  // Writes after the last checkpoint must not show up in any restore.
  await workloadPhase(client, 4);
  await caughtUp(master);
  await aofCaughtUp(store, master.dir);
}, 120_000);

afterAll(async () => {
  await daemon?.stop();
  await master?.stop();
  if (work) await removeTempDir(work);
});

describe('rf restore --until reproduces the master exactly at each checkpoint', () => {
  it('the checkpoints differ from each other (the oracle can fail)', () => {
    expect(new Set(checkpoints.map((c) => c.digest)).size).toBe(3);
  });

  it('through --out, booted with redis-server --appendonly yes, while rf listen runs', async () => {
    for (const [i, cp] of checkpoints.entries()) {
      const out = path.join(work, `out-${i}`);
      const res = await rf(['restore', '--store', store, '--until', cp.at, '--out', out, '--json']);
      expect(res.code, res.stderr).toBe(0);
      const summary = JSON.parse(res.stdout);
      // Redis 6 gets its own layout, one appendonly.aof with an RDB preamble.
      const redis6 = hasFeature('multi-part AOF') ? '' : ' --aof-use-rdb-preamble yes';
      expect(summary.into.command).toBe(`redis-server --dir ${out} --appendonly yes${redis6}`);
      expect(res.stderr).toContain(`until ${cp.at}`);
      const booted = await startRedis({ dir: out, args: ['--appendonly', 'yes'] });
      try {
        const c = await booted.client();
        expect(String(await c.call('DEBUG', 'DIGEST'))).toBe(cp.digest);
        expect(await keyCount(c)).toBe(cp.keys);
      } finally {
        await booted.stop();
      }
    }
  });

  it('through --target, into a running empty redis-server', async () => {
    for (const cp of checkpoints) {
      const target = await startRedis();
      try {
        const res = await rf([
          'restore',
          '--store',
          store,
          '--until',
          cp.at,
          '--target',
          target.url,
          '--json',
        ]);
        expect(res.code, res.stderr).toBe(0);
        const c = await target.client();
        expect(String(await c.call('DEBUG', 'DIGEST'))).toBe(cp.digest);
        const role = (await c.info('replication')).role;
        expect(role).toBe('master');
        // It is a live, writable master again.
        expect(await c.call('SET', 'after-restore', '1')).toBe('OK');
      } finally {
        await target.stop();
      }
    }
  });

  it('--dry-run names the base and the last write, and writes nothing', async () => {
    const cp = checkpoints[1]!;
    const out = path.join(work, 'dry');
    const res = await rf([
      'restore',
      '--store',
      store,
      '--until',
      cp.at,
      '--out',
      out,
      '--dry-run',
      '--json',
    ]);
    expect(res.code, res.stderr).toBe(0);
    const plan = JSON.parse(res.stdout);
    expect(plan.dryRun).toBe(true);
    expect(plan.timeline).toBe(1);
    expect(plan.base.offset).toBeGreaterThanOrEqual(0);
    expect(plan.replay.writes).toBeGreaterThan(40);
    expect(Date.parse(plan.lastWrite.time)).toBeLessThanOrEqual(Date.parse(cp.at));
    expect(plan.droppedTransaction).toBeNull();
    const { existsSync } = await import('node:fs');
    expect(existsSync(out)).toBe(false);
  });

  it('from the AOF chunks (second precision), through --out and --target', async () => {
    for (const [i, cp] of checkpoints.entries()) {
      const out = path.join(work, `aof-out-${i}`);
      const res = await rf([
        'restore',
        '--store',
        store,
        '--until',
        cp.at,
        '--from',
        'aof',
        '--out',
        out,
        '--json',
      ]);
      expect(res.code, res.stderr).toBe(0);
      const summary = JSON.parse(res.stdout);
      expect(summary.from).toBe('aof');
      expect(summary.precision).toBe(hasFeature('AOF timestamps') ? 'second' : 'chunk');
      expect(await bootedDigest(out)).toBe(cp.digest);
      const target = await startRedis();
      try {
        const t = await rf([
          'restore',
          '--store',
          store,
          '--until',
          cp.at,
          '--from',
          'aof',
          '--target',
          target.url,
        ]);
        expect(t.code, t.stderr).toBe(0);
        expect(String(await (await target.client()).call('DEBUG', 'DIGEST'))).toBe(cp.digest);
      } finally {
        await target.stop();
      }
    }
  });

  it('--target survives the keep-alive newlines a slow-loading target sends while it loads', async () => {
    // A base over 2 MB (loading_process_events_interval_bytes) loaded slowly (key-load-delay,
    // µs per key) makes the target send rf bare newlines (replicationSendNewlineToMaster)
    // before its first ACK.
    const target = await startRedis({ args: ['--key-load-delay', '40'] });
    try {
      const cp = checkpoints[2]!;
      const res = await rf(['restore', '--store', store, '--until', cp.at, '--target', target.url]);
      expect(res.code, res.stderr).toBe(0);
      expect(String(await (await target.client()).call('DEBUG', 'DIGEST'))).toBe(cp.digest);
      expect(target.logTail(200)).toMatch(/Loading DB in memory|MASTER <-> REPLICA sync/);
    } finally {
      await target.stop();
    }
  });
});
