import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Listener } from '../../src/daemon/listener.js';
import { silentLogger } from '../../src/logger.js';
import { listenConfig } from '../helpers/listen-config.js';
import { waitFor } from '../helpers/load.js';
import { bootedDigest } from '../helpers/redis.js';
import { rf } from '../helpers/rf.js';
import { rollSchedule } from '../helpers/roll-schedule.js';
import { caughtUp, testScope } from '../helpers/scope.js';
import { workloadPhase } from '../helpers/workload.js';

/**
 * `rf listen --roll-base-every` runs the roll of `rf compact` inside the daemon, on the store it
 * owns, while it captures. The command line refuses periods under 5m (bad-input.test.ts); the
 * Listener itself takes any period, so these tests use a second.
 */

const scope = testScope();

function start(listener: Listener): void {
  const running = listener.run();
  scope.defer(async () => {
    listener.stop();
    await running.catch(() => undefined);
  });
}

interface Plan {
  base: { offset: number; rolled: { builtBy: string; digest: string } | null };
}

async function plan(store: string): Promise<Plan> {
  const res = await rf(['restore', '--store', store, '--until', 'latest', '--dry-run', '--json']);
  expect(res.code, res.stderr).toBe(0);
  return JSON.parse(res.stdout) as Plan;
}

describe('rf listen --roll-base-every', () => {
  it('rolls a base while it captures, and a restore from it is exact', async () => {
    const master = await scope.master();
    const store = await scope.storeDir();
    const c = await master.client();
    await workloadPhase(c, 0);
    start(new Listener(listenConfig(master, store, { rollBases: rollSchedule() }), silentLogger()));
    await caughtUp(master);
    await workloadPhase(c, 1);
    await caughtUp(master);
    await waitFor(async () => (await plan(store)).base.rolled !== null, 'a rolled base', 60_000);
    const digest = String(await c.call('DEBUG', 'DIGEST'));
    await caughtUp(master);
    const p = await plan(store);
    expect(p.base.rolled?.builtBy).toBe('rf');
    const out = path.join(path.dirname(store), 'out');
    const res = await rf(['restore', '--store', store, '--until', 'latest', '--out', out]);
    expect(res.code, res.stderr).toBe(0);
    expect(await bootedDigest(out)).toBe(digest);
  }, 90_000);

  it('a roll that cannot run its redis-server is counted, and capture goes on', async () => {
    const master = await scope.master();
    const store = await scope.storeDir();
    const missing = path.join(path.dirname(store), 'no-such-redis-server');
    const listener = new Listener(
      listenConfig(master, store, { rollBases: rollSchedule(1000, missing) }),
      silentLogger(),
    );
    start(listener);
    await caughtUp(master);
    const c = await master.client();
    await c.call('SET', 'after', 'base');
    await waitFor(() => (listener.status().errors.RF_REDIS_SERVER ?? 0) > 0, 'a failed roll');
    expect(listener.status().lastError).toMatchObject({
      job: 'rolled base',
      code: 'RF_REDIS_SERVER',
    });
    expect(listener.status().lastError?.message).toContain(missing);
    await c.call('SET', 'still', 'captured');
    await caughtUp(master);
    const log = await rf(['log', '--json', '--store', store, '--key', 'still']);
    expect(log.stdout).toContain('captured');
  }, 60_000);
});
