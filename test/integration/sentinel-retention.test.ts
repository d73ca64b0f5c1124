import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SentinelListener } from '../../src/daemon/sentinel-listener.js';
import { silentLogger } from '../../src/logger.js';
import type { RedisClient } from '../../src/resp/client.js';
import { waitFor } from '../helpers/load.js';
import { bootedDigest } from '../helpers/redis.js';
import { rf } from '../helpers/rf.js';
import { rollSchedule } from '../helpers/roll-schedule.js';
import { rfHolds, startSentinels, type TestSentinels } from '../helpers/sentinel.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

/**
 * rf listen --sentinel with --retain and --roll-base-every, against a real master, a real replica
 * and three real sentinels: after a SENTINEL FAILOVER, bases rolled in a scratch redis-server
 * (never a sync from the master) let retention drop the first snapshot and the stream before the
 * window, while every moment inside the window restores exactly. The command line refuses rolls
 * under 5m and the daemon takes any period, so the listener runs here with a second and a window
 * of seconds; the loop's clock is the real one.
 */
let sentinels: TestSentinels;
let work: string;

/** A quiet moment: rf holds every write, the master's digest, and T just after. */
async function checkpoint(c: RedisClient): Promise<{ t: number; digest: string }> {
  await rfHolds(c);
  const digest = String(await c.call('DEBUG', 'DIGEST'));
  const t = Date.now();
  await waitFor(() => Date.now() > t, 'the clock to move past T', 1_000, 1);
  return { t, digest };
}

async function writeFor(c: RedisClient, ms: number, tag: string): Promise<void> {
  const end = Date.now() + ms;
  for (let i = 0; Date.now() < end; i++) {
    await c.call('SET', `${tag}:${i % 40}`, String(i));
    await c.call('MULTI');
    await c.call('RPUSH', `${tag}:list`, String(i));
    await c.call('INCR', `${tag}:n`);
    await c.call('EXEC');
    await c.call(
      'EVAL',
      "return redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])",
      '1',
      `${tag}:h`,
      `f${i % 7}`,
      String(i),
    );
  }
}

async function restoreDigest(store: string, t: number, name: string): Promise<string> {
  const out = path.join(work, name);
  const res = await rf(['restore', '--store', store, '--until', `@${t / 1000}`, '--out', out], {
    timeoutMs: 60_000,
  });
  expect(res.code, `${name}: ${res.stdout}\n${res.stderr}`).toBe(0);
  return bootedDigest(out);
}

beforeAll(async () => {
  sentinels = await startSentinels();
  work = await makeTempDir('rf-sentinel-retain-');
}, 120_000);

afterAll(async () => {
  await sentinels?.stop();
  if (work) await removeTempDir(work);
});

describe('rf listen --sentinel --retain --roll-base-every', () => {
  it('rolls bases and prunes to the window; the window start and later moments restore exactly', async () => {
    const store = path.join(work, 'store');
    const retainMs = 10_000;
    const listener = new SentinelListener(
      {
        sentinels: sentinels.sentinels.map((s) => ({
          host: s.host,
          port: s.port,
          db: 0,
          tls: false,
        })),
        masterName: sentinels.name,
        masterAuth: { tls: false },
        refreshMs: 5_000,
        store,
        name: 'default',
        connectTimeoutMs: 5_000,
        readTimeoutMs: 60_000,
        maxSegmentBytes: 2048,
        flushIntervalMs: 20,
        ackIntervalMs: 1000,
        listeningPort: 0,
        baseEveryMs: null,
        rollBases: rollSchedule(),
        retainMs,
      },
      silentLogger(),
    );
    const running = listener.run();
    let stopped = false;
    const stop = async () => {
      if (stopped) return;
      stopped = true;
      listener.stop();
      await running;
    };
    try {
      const first = await sentinels.master();
      const fc = await first.client();
      await waitFor(() => listener.status().session?.phase === 'streaming', 'rf to stream');
      await writeFor(fc, 1_500, 'old');
      const old = await checkpoint(fc);
      // SENTINEL FAILOVER with the old master's writes paused first (as FAILOVER does), so the
      // promoted replica holds every byte rf holds; rf follows it and retention goes on there.
      await fc.call('CLIENT', 'PAUSE', '60000', 'WRITE');
      await rfHolds(fc);
      const promoted = await sentinels.failover();
      expect(promoted.port).not.toBe(first.port);
      await fc.call('CLIENT', 'UNPAUSE');
      const c = await promoted.client();
      await waitFor(
        () => listener.status().session?.phase === 'streaming' && listener.status().sessions > 1,
        'rf to stream from the promoted master',
        60_000,
      );
      await writeFor(c, 1_500, 'a');
      // A quiet stretch much longer than a prune period: the window's start is stopped inside it.
      const a = await checkpoint(c);
      await new Promise((r) => setTimeout(r, 8_000));
      await writeFor(c, 1_500, 'b');
      const b = await checkpoint(c);
      await writeFor(c, 1_500, 'c');
      const cc = await checkpoint(c);
      // rf listen prunes once a second: stop it once the window starts inside the quiet stretch,
      // and the archive reaches the last checkpoint (the idle master's offset seen durable).
      await waitFor(
        async () => {
          const info = JSON.parse((await rf(['info', '--store', store, '--json'])).stdout);
          const source = info.sources[0];
          const r = source.retention as { windowStart: string } | null;
          const until = Date.parse(source.restorable.at(-1)?.until ?? '1970-01-01T00:00:00Z');
          return r !== null && Date.parse(r.windowStart) > a.t && until >= cc.t;
        },
        'the window to pass a, and the archive to reach c',
        30_000,
        100,
      );
      await stop();

      const info = JSON.parse((await rf(['info', '--store', store, '--json'])).stdout).sources[0];
      const w = Date.parse(info.retention.windowStart);
      expect(info.retention.retainMs).toBe(retainMs);
      // Inside the quiet stretch after a: the state at w is a's.
      expect(w).toBeGreaterThan(a.t);
      expect(w).toBeLessThan(a.t + 8_000);
      const from = Date.parse(info.restorable[0].from);
      expect(from).toBeLessThanOrEqual(w);
      expect(from).toBeGreaterThan(old.t);
      // One timeline is left whether the promoted master continued rf's (psync2) or not: one
      // that ended at the failover ends before the window, and goes.
      expect(info.timelines).toHaveLength(1);

      // Every base before the one a restore to w uses is gone, the master's snapshot among
      // them: what is left was rolled by rf.
      const plan = await rf([
        'restore',
        '--store',
        store,
        '--until',
        `@${w / 1000}`,
        '--dry-run',
        '--json',
      ]);
      expect(plan.code, plan.stderr).toBe(0);
      const base = JSON.parse(plan.stdout).base as { rolled: { builtBy: string } | null };
      expect(base.rolled?.builtBy).toBe('rf');

      expect(await restoreDigest(store, w, 'window-start')).toBe(a.digest);
      expect(await restoreDigest(store, b.t, 'b')).toBe(b.digest);
      expect(await restoreDigest(store, cc.t, 'c')).toBe(cc.digest);

      const verify = await rf(['verify', '--store', store]);
      expect(verify.code, `${verify.stdout}\n${verify.stderr}`).toBe(0);

      const before = await rf([
        'restore',
        '--store',
        store,
        '--until',
        `@${old.t / 1000}`,
        '--dry-run',
        '--json',
      ]);
      expect(before.code).toBe(2);
      expect(JSON.parse(before.stdout).error.code).toBe('RF_TIME_OUT_OF_RANGE');
    } finally {
      await stop();
    }
  }, 180_000);
});
