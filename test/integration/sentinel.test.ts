import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RemoteKv } from '../../src/daemon/control-client.js';
import type { RedisClient } from '../../src/resp/client.js';
import { keys } from '../../src/store/keys.js';
import { samplesFrom } from '../../src/store/samples.js';
import { readRecord, storePaths } from '../../src/store/store.js';
import type { DurableState } from '../../src/store/types.js';
import { waitFor } from '../helpers/load.js';
import { bootedDigest, freePort, type RedisServer } from '../helpers/redis.js';
import { RfDaemon, rf } from '../helpers/rf.js';
import {
  pausedFailover,
  rfHolds,
  startSentinel,
  startSentinels,
  type TestSentinels,
} from '../helpers/sentinel.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

/**
 * rf listen --sentinel against a real master, a real replica and three real sentinels: writes
 * under load (MULTI/EXEC and EVAL among them), SENTINEL FAILOVER while they go on, rf follows
 * the promoted replica with PSYNC <replid> <durable+1> and the one timeline goes on; every
 * recorded moment, before and after the failover, restores to exactly the digest it had.
 */

let sentinels: TestSentinels;
let work: string;
let store: string;
let daemon: RfDaemon;
interface Moment {
  t: number;
  digest: string;
  label: string;
}
let restores = 0;
/** Every load started: a test that fails midway must not leave one writing into the next. */
const loads = new Set<{ stop(): Promise<void> }>();
let metricsPort = 0;

/** Writes that follow Sentinel: when the master's connection is dropped, ask for the master again. */
class SentinelLoad {
  rounds = 0;
  errors: unknown[] = [];
  clientId = 0;
  /** While set, a dropped connection is the failover's doing and the load reconnects. */
  failingOver = false;
  private client: RedisClient | null = null;
  private running = false;
  private paused: Promise<void> | null = null;
  private resume: (() => void) | null = null;
  private idle: (() => void) | null = null;
  private done: Promise<void> = Promise.resolve();

  private async connect(): Promise<RedisClient> {
    this.client?.destroy();
    const c = await (await sentinels.master()).client();
    this.clientId = Number(await c.call('CLIENT', 'ID'));
    this.client = c;
    return c;
  }

  private async round(c: RedisClient, r: number): Promise<void> {
    const j = r % 16;
    await c.call('SET', `s:${j}`, `v${r}`);
    await c.call('HSET', `h:${j}`, `f${r % 5}`, String(r));
    await c.call('PEXPIRE', `h:${j}`, String(3_600_000 + r));
    await c.call('MULTI');
    await c.call('INCR', `n:${j}`);
    await c.call('RPUSH', `l:${j}`, `r${r}`);
    await c.call('EXEC');
    await c.call(
      'EVAL',
      "redis.call('SET', KEYS[1], ARGV[1]); return redis.call('SADD', KEYS[2], ARGV[1])",
      '2',
      `e:${j}`,
      `set:${j}`,
      `e${r}`,
    );
    if (r % 7 === 0) await c.call('DEL', `s:${(j + 3) % 16}`);
  }

  async start(): Promise<void> {
    loads.add(this);
    let c = await this.connect();
    this.running = true;
    this.done = (async () => {
      while (this.running) {
        if (this.paused !== null) {
          this.idle?.();
          await this.paused;
          continue;
        }
        try {
          await this.round(c, this.rounds);
          this.rounds++;
        } catch (err) {
          if (!this.failingOver) {
            this.errors.push(err);
            this.running = false;
            break;
          }
          await new Promise((r) => setTimeout(r, 100));
          c = await this.connect().catch(() => c);
        }
      }
      this.idle?.();
    })();
  }

  async more(n: number): Promise<void> {
    const target = this.rounds + n;
    await waitFor(
      () => this.rounds >= target || this.errors.length > 0,
      `${n} more rounds of writes`,
      60_000,
    );
    if (this.errors.length > 0) throw this.errors[0];
  }

  /** Stops writing after the round in flight. */
  async pause(): Promise<void> {
    const idle = new Promise<void>((resolve) => {
      this.idle = resolve;
    });
    this.paused = new Promise((resolve) => {
      this.resume = resolve;
    });
    await idle;
  }

  unpause(): void {
    this.paused = null;
    this.resume?.();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.unpause();
    await this.done;
    this.client?.destroy();
  }
}

/** A quiet moment: the master's DEBUG DIGEST once rf holds every write, and T just after. */
async function checkpoint(load: SentinelLoad, label: string, moments: Moment[]): Promise<void> {
  await load.pause();
  const c = await (await sentinels.master()).client();
  await rfHolds(c);
  const digest = String(await c.call('DEBUG', 'DIGEST'));
  const t = Date.now();
  await waitFor(() => Date.now() > t, 'the clock to move past T', 1_000, 1);
  moments.push({ t, digest, label });
  load.unpause();
}

/**
 * Whether rf, running, has stored an offset sample of its current replid taken after `t`, at or
 * below its durable offset: what bounds the writes a restarted rf receives again to after `t`.
 */
async function sampleStoredAfter(t: number): Promise<boolean> {
  const kv = await RemoteKv.connect(store, storePaths(store).socket);
  if (kv === null) return false;
  try {
    const state = await readRecord<DurableState>(kv, keys.state('default'));
    if (state === undefined) return false;
    const samples = await samplesFrom(kv, 'default', state.replid, 0);
    return samples.some((s) => s.sentAt > t && s.offset <= state.durableOffset);
  } finally {
    await kv.close();
  }
}

/** Each moment restored with --out and booted: the digest the master had then. */
async function restoresExactly(moments: Moment[]): Promise<void> {
  for (const m of moments) {
    const out = path.join(work, `out-${++restores}`);
    const res = await rf(['restore', '--store', store, '--until', `@${m.t / 1000}`, '--out', out], {
      timeoutMs: 60_000,
    });
    expect(res.code, `${m.label}: ${res.stdout}\n${res.stderr}`).toBe(0);
    expect(await bootedDigest(out), m.label).toBe(m.digest);
  }
}

/** The default source in `rf info --json`. */
async function sourceInfo(): Promise<{ timelines: unknown[]; gaps: unknown[] }> {
  const info = await rf(['info', '--store', store, '--json']);
  expect(info.code, info.stderr).toBe(0);
  const source = (
    JSON.parse(info.stdout) as {
      sources: Array<{ name: string; timelines: unknown[]; gaps: unknown[] }>;
    }
  ).sources.find((s) => s.name === 'default');
  expect(source).toBeDefined();
  return source!;
}

function startDaemon(): RfDaemon {
  return RfDaemon.start([
    ...sentinels.args,
    '--master-name',
    sentinels.name,
    '--store',
    store,
    '--flush-interval',
    '10',
    '--metrics',
    `127.0.0.1:${metricsPort}`,
  ]);
}

/** One series of the daemon's /metrics, without labels. */
async function metric(name: string): Promise<number | null> {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? null : Number(line.slice(name.length + 1));
}

beforeAll(async () => {
  sentinels = await startSentinels();
  work = await makeTempDir('rf-sentinel-test-');
  store = path.join(work, 'store');
  metricsPort = await freePort();
  daemon = startDaemon();
  await daemon.waitForLog((l) => l.msg === 'first timeline started from the base', 60_000);
}, 120_000);

afterEach(async () => {
  for (const load of loads) await load.stop();
  loads.clear();
});

afterAll(async () => {
  await daemon?.stop();
  await sentinels?.stop();
  if (work) await removeTempDir(work);
});

describe('rf listen --sentinel', () => {
  it('follows SENTINEL FAILOVER under load on one timeline, every moment restored exactly', async () => {
    const first = daemon.lines.find((l) => l.msg === 'Sentinel names the master');
    const original = await sentinels.master();
    expect(first?.master).toBe(`127.0.0.1:${original.port}`);
    const moments: Moment[] = [];
    const load = new SentinelLoad();
    await load.start();
    await load.more(40);
    await checkpoint(load, 'before the failover', moments);
    await load.more(40);
    await checkpoint(load, 'just before the failover', moments);
    await load.more(20);

    // The failover under load. Writes the old master takes after the promotion never reach the
    // new one (Sentinel's window, until +convert-to-slave), and neither do its own hello
    // PUBLISHes: rf, still attached, would hold them and find the new master cannot continue.
    // As FAILOVER does for a graceful switch, the old master's writes are paused first; the
    // load's commands wait there, and are dropped with its connection once Sentinel has switched.
    load.failingOver = true;
    const logFrom = daemon.lines.length;
    const { promoted, old: oc, pausedAt } = await pausedFailover(sentinels);
    expect(promoted.port).not.toBe(original.port);
    await oc.call('CLIENT', 'KILL', 'ID', String(load.clientId));
    const resumed = await daemon.waitForLog(
      (l) =>
        l.msg === 'partial resync accepted (+CONTINUE): same timeline, no gap' &&
        l.master === `127.0.0.1:${promoted.port}`,
      60_000,
      logFrom,
    );
    expect(resumed.offset).toBe(pausedAt + 1);
    await oc.call('CLIENT', 'UNPAUSE');
    // The metrics follow the session to the new master: connected, on the same timeline.
    await waitFor(
      async () => ((await metric('rf_durable_offset')) ?? 0) > pausedAt,
      'rf_durable_offset past the failover',
    );
    expect(await metric('rf_connected')).toBe(1);
    expect(await metric('rf_timeline')).toBe(1);
    expect(
      daemon.lines.slice(logFrom).some((l) => l.msg === '+switch-master'),
      'rf heard +switch-master',
    ).toBe(true);

    await load.more(40);
    load.failingOver = false;
    await checkpoint(load, 'after the failover', moments);
    await load.more(40);
    await checkpoint(load, 'later', moments);
    await load.more(10);
    await load.stop();
    expect(load.errors).toEqual([]);
    const nc = await promoted.client();
    await rfHolds(nc);

    // The new master continued rf's stream: a partial sync, never a full one.
    const stats = await nc.info('stats');
    expect(Number(stats.sync_partial_ok)).toBeGreaterThanOrEqual(1);
    expect(Number(stats.sync_full)).toBe(0);

    const source = await sourceInfo();
    expect(source.timelines).toHaveLength(1);
    expect(source.gaps).toEqual([]);

    const verify = await rf(['verify', '--store', store]);
    expect(verify.code, `${verify.stdout}\n${verify.stderr}`).toBe(0);

    expect(moments).toHaveLength(4);
    await restoresExactly(moments);
  }, 240_000);
  it('kill -9 of rf under load: started again, it asks Sentinel and resumes the timeline', async () => {
    const moments: Moment[] = [];
    const load = new SentinelLoad();
    await load.start();
    await load.more(20);
    await checkpoint(load, 'before rf is killed', moments);
    // A write after T that rf receives again after a kill -9 is known only to have run after
    // the last stored offset sample below it: were that sample from before T, the write would
    // be in an imprecise window over T (restores there are refused). rf stores the samples with
    // each commit; killed once one taken after T lies below its durable offset, T stays exact.
    await load.more(10);
    await waitFor(
      () => sampleStoredAfter(moments[0]!.t),
      'an offset sample taken after T, below the durable offset, in the store',
      30_000,
    );
    await daemon.stop('SIGKILL');
    await load.more(20);
    daemon = startDaemon();
    const master = await sentinels.master();
    await daemon.waitForLog(
      (l) =>
        l.msg === 'partial resync accepted (+CONTINUE): same timeline, no gap' &&
        l.master === `127.0.0.1:${master.port}`,
      60_000,
    );
    await load.more(20);
    await checkpoint(load, 'after rf started again', moments);
    await load.more(5);
    await load.stop();
    expect(load.errors).toEqual([]);
    await rfHolds(await master.client());
    const source = await sourceInfo();
    expect(source.timelines).toHaveLength(1);
    expect(source.gaps).toEqual([]);
    await restoresExactly(moments);
  }, 180_000);
  it('with an archive to resume, no sentinel answering at start is waited for, not an error', async () => {
    await daemon.stop();
    const dead = await freePort();
    const waiting = RfDaemon.start([
      '--sentinel',
      `redis://127.0.0.1:${dead}`,
      '--master-name',
      sentinels.name,
      '--store',
      store,
      '--connect-timeout',
      '1000',
    ]);
    try {
      await waiting.waitForLog(
        (l) => l.msg === 'Sentinel or the master unreachable at start; will keep asking',
        30_000,
      );
      await waiting.waitForLog((l) => l.msg === 'control socket listening', 30_000);
      expect(waiting.child.exitCode).toBeNull();
    } finally {
      expect((await waiting.stop()).code).toBe(0);
    }
    daemon = startDaemon();
    await daemon.waitForLog(
      (l) => l.msg === 'partial resync accepted (+CONTINUE): same timeline, no gap',
      60_000,
    );
  });
});

describe('rf listen --sentinel refuses', () => {
  const listen = (args: string[], dir: string) =>
    rf(['listen', ...args, '--store', dir, '--connect-timeout', '1000', '--json'], {
      timeoutMs: 30_000,
    });

  it('a master name no sentinel knows, naming it and the sentinels asked', async () => {
    const dir = path.join(work, 'unknown');
    const res = await listen([...sentinels.args, '--master-name', 'nosuchmaster'], dir);
    expect(res.code, res.stderr).toBe(2);
    expect(res.stderr).toContain('RF_SENTINEL_UNKNOWN_MASTER');
    expect(res.stderr).toContain('nosuchmaster');
    for (const s of sentinels.sentinels) expect(res.stderr).toContain(`127.0.0.1:${s.port}`);
    expect(existsSync(dir)).toBe(false);
  });

  it('when no sentinel answers, naming each address', async () => {
    const dir = path.join(work, 'unreachable');
    const ports = [await freePort(), await freePort()];
    const res = await listen(
      [
        ...ports.flatMap((p) => ['--sentinel', `redis://127.0.0.1:${p}`]),
        '--master-name',
        sentinels.name,
      ],
      dir,
    );
    expect(res.code, res.stderr).toBe(3);
    expect(res.stderr).toContain('RF_SENTINEL_UNREACHABLE');
    for (const p of ports) expect(res.stderr).toContain(`127.0.0.1:${p}`);
    expect(existsSync(dir)).toBe(false);
  });

  it('a node Sentinel names that is a replica', async () => {
    const master = await sentinels.master();
    const replica: RedisServer = sentinels.nodes.find((n) => n.port !== master.port)!;
    const s = await sentinels.sentinels[0]!.client();
    await s.call('SENTINEL', 'MONITOR', 'onreplica', '127.0.0.1', String(replica.port), '2');
    try {
      const dir = path.join(work, 'replica');
      const res = await listen(
        ['--sentinel', sentinels.sentinels[0]!.url, '--master-name', 'onreplica'],
        dir,
      );
      expect(res.code, res.stderr).toBe(2);
      expect(res.stderr).toContain('RF_SOURCE_IS_REPLICA');
      expect(res.stderr).toContain(`127.0.0.1:${replica.port}`);
      expect(existsSync(dir)).toBe(false);
    } finally {
      await s.call('SENTINEL', 'REMOVE', 'onreplica');
    }
  });

  it('--sentinel with --source or --cluster (RF_USAGE)', async () => {
    const dir = path.join(work, 'usage');
    const base = [...sentinels.args, '--master-name', sentinels.name];
    for (const extra of [['--source', 'redis://127.0.0.1:1'], ['--cluster']]) {
      const res = await listen([...base, ...extra], dir);
      expect(res.code, `${extra[0]}: ${res.stderr}`).toBe(2);
      expect(res.stderr).toContain('RF_USAGE');
      expect(res.stderr).toContain(extra[0]!);
    }
    const alone = await listen(['--master-name', sentinels.name], dir);
    expect(alone.code).toBe(2);
    expect(alone.stderr).toContain('--sentinel');
    expect(existsSync(dir)).toBe(false);
  });

  it('a sentinel with its own ACL user: the password from the URL or a file, never logged', async () => {
    const master = await sentinels.master();
    const secret = 'sentinel-s3cret-pw';
    const guarded = await startSentinel(sentinels.name, master.port, [
      'user default off',
      `user rf on >${secret} +sentinel|get-master-addr-by-name +subscribe +ping &+switch-master`,
    ]);
    try {
      const where = `127.0.0.1:${guarded.server.port}`;
      const pwFile = path.join(work, 'sentinel-password');
      writeFileSync(pwFile, `${secret}\n`, { mode: 0o600 });
      for (const args of [
        ['--sentinel', `redis://rf:${secret}@${where}`],
        ['--sentinel', `redis://rf@${where}`, '--sentinel-password-file', pwFile],
      ]) {
        const dir = await makeTempDir('rf-sentinel-acl-');
        const d = RfDaemon.start([...args, '--master-name', sentinels.name, '--store', dir]);
        try {
          const named = await d.waitForLog((l) => l.msg === 'Sentinel names the master', 30_000);
          expect(named.master).toBe(`127.0.0.1:${master.port}`);
          await d.waitForLog((l) => l.msg === 'subscribed to +switch-master', 30_000);
          await d.waitForLog((l) => l.msg === 'first timeline started from the base', 60_000);
        } finally {
          await d.stop();
          await removeTempDir(dir);
        }
        expect(d.output).not.toContain(secret);
        // A password on the command line is warned about, naming where it should go instead.
        if (args[1]!.includes(secret))
          expect(d.output).toContain('--sentinel-password-file for the sentinels');
      }
      // Without the password the sentinel is not reached: said with the address and the reason.
      const res = await listen(
        ['--sentinel', `redis://rf:wrong@${where}`, '--master-name', sentinels.name],
        path.join(work, 'acl-wrong'),
      );
      expect(res.code, res.stderr).toBe(3);
      expect(res.stderr).toContain('RF_SENTINEL_UNREACHABLE');
      expect(res.stderr).toContain(where);
      expect(res.stderr).not.toContain('wrong@');
    } finally {
      await guarded.stop();
    }
  });
});

/**
 * A failover under load that nothing pauses: the replica Sentinel promotes continues the old
 * replid up to its second_repl_offset (replication.c masterTryPartialResynchronization), and rf
 * asks for its durable offset + 1. Whichever Redis allows, rf must do exactly that: continue the
 * timeline, or start a new one after a gap; the moments on each side restore exactly.
 */
async function failoverUnderLoad(
  what: string,
  trigger: (victim: RedisServer) => Promise<void>,
): Promise<void> {
  const victim = await sentinels.master();
  const heir = sentinels.nodes.find((n) => n.port !== victim.port)!;
  // Since the failover before, Sentinel has turned the old master into the new one's replica
  // (+convert-to-slave, which also kills its normal clients: a new one each time).
  await waitFor(
    async () => {
      const c = await heir.client();
      try {
        const r = await c.info('replication');
        return (
          r.role === 'slave' &&
          r.master_port === String(victim.port) &&
          r.master_link_status === 'up'
        );
      } catch {
        return false;
      } finally {
        c.destroy();
      }
    },
    `${heir.port} to replicate ${victim.port}`,
    60_000,
    250,
  );
  const moments: Moment[] = [];
  const load = new SentinelLoad();
  await load.start();
  await load.more(30);
  await checkpoint(load, `before ${what}`, moments);
  await load.more(20);
  const before = await sourceInfo();
  const logFrom = daemon.lines.length;
  load.failingOver = true;
  await trigger(victim);
  const resumed = await daemon.waitForLog(
    (l) =>
      l.master === `127.0.0.1:${heir.port}` &&
      (l.msg === 'partial resync accepted (+CONTINUE): same timeline, no gap' ||
        l.msg === 'full resync (+FULLRESYNC): receiving a new base'),
    90_000,
    logFrom,
  );
  // Sentinel's promotion kills the normal clients of the promoted replica (CLIENT KILL TYPE normal).
  const promoted = await heir.client();
  const repl = await promoted.info('replication');
  const continued = resumed.msg.startsWith('partial');
  const asked = continued
    ? Number(resumed.offset)
    : Number((resumed.resume as { offset: number }).offset);
  expect(continued, `asked ${asked}, second_repl_offset ${repl.second_repl_offset}`).toBe(
    asked <= Number(repl.second_repl_offset),
  );
  await load.more(30);
  load.failingOver = false;
  await checkpoint(load, `after ${what}`, moments);
  await load.more(5);
  await load.stop();
  expect(load.errors).toEqual([]);
  await rfHolds(promoted);

  const after = await sourceInfo();
  expect(after.timelines).toHaveLength(before.timelines.length + (continued ? 0 : 1));
  expect(after.gaps).toHaveLength(before.gaps.length + (continued ? 0 : 1));
  await restoresExactly(moments);
}

describe('rf listen --sentinel, failovers nothing pauses', () => {
  it('SENTINEL FAILOVER with the old master taking writes: the timeline goes on, or a new one starts, as Redis allows', async () => {
    await failoverUnderLoad('the failover', async () => {
      await sentinels.failover();
    });
  }, 240_000);

  it('kill -9 of the master: rf follows the replica Sentinel promotes, as Redis allows', async () => {
    await failoverUnderLoad('the kill', (victim) => victim.kill('SIGKILL'));
  }, 240_000);
});
