import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkAppendOnly, startAofCapture } from '../../src/aof/index.js';
import { RewriteScheduler } from '../../src/aof/rewrite.js';
import { Store } from '../../src/store/store.js';
import { quiet, REDIS7_AOF } from '../helpers/aof.js';
import { waitFor } from '../helpers/load.js';
import type { RedisServer } from '../helpers/redis.js';
import { rf } from '../helpers/rf.js';
import { caughtUp, testScope } from '../helpers/scope.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

/**
 * The least-privilege user `rf doctor` prints, created exactly as printed, running every part of
 * rf: listen with --aof-dir and --metrics, the master watch, a rewrite cycle, doctor and ship.
 */
const scope = testScope();
const PASSWORD = 'acl-secret';

/** The ACL SETUSER line `rf doctor` prints, run by an admin with the password filled in. */
async function createPrintedUser(master: RedisServer, drop?: string): Promise<string> {
  const res = await rf(['doctor', '--source', master.url, '--json']);
  const line = String(JSON.parse(res.stdout).aclLine);
  expect(line).toMatch(/^ACL SETUSER rf on >CHOOSE-A-PASSWORD /);
  const words = line
    .replace('CHOOSE-A-PASSWORD', PASSWORD)
    .split(' ')
    .filter((w) => w !== drop);
  await (await master.client()).call(...words);
  return `redis://rf:${PASSWORD}@127.0.0.1:${master.port}`;
}

/** The master as the rf user, for the parts of rf that run in this process. */
function redisTarget(master: RedisServer) {
  return {
    endpoint: {
      host: master.host,
      port: master.port,
      db: 0,
      tls: false,
      username: 'rf',
      password: PASSWORD,
    },
  };
}

function metric(text: string, name: string): number | undefined {
  const m = new RegExp(`^${name.replace(/[{}"]/g, '\\$&')} (\\S+)$`, 'm').exec(text);
  return m === null ? undefined : Number(m[1]);
}

async function listenAs(url: string, master: RedisServer) {
  const store = await scope.storeDir();
  const d = scope.daemon([
    '--source',
    url,
    '--store',
    store,
    '--aof-dir',
    master.dir,
    '--metrics',
    '127.0.0.1:0',
  ]);
  const metrics = String((await d.waitForLog((l) => l.msg === 'metrics listening')).metrics);
  await d.waitForLog((l) => l.msg === 'first timeline started from the base');
  return { d, store, metrics };
}

describe('the ACL rf doctor prints', () => {
  it('is enough for rf listen with --aof-dir and --metrics, the master watch, doctor and ship', async () => {
    const master = await scope.master(REDIS7_AOF);
    const url = await createPrintedUser(master);
    const { d, store, metrics } = await listenAs(url, master);
    const admin = await master.client();
    for (let i = 0; i < 50; i++) await admin.call('SET', `k${i}`, 'v');
    const offset = await caughtUp(master);
    // The master watch samples master_repl_offset as this user: the lag metrics are live.
    await waitFor(
      async () => metric(await (await fetch(metrics)).text(), 'rf_master_offset') === offset,
      'rf_master_offset to reach the master offset',
    );
    const text = await (await fetch(metrics)).text();
    expect(text).not.toMatch(/^rf_errors_total\{/m);
    const info = JSON.parse((await rf(['info', '--json', '--store', store])).stdout);
    expect(info.sources[0].lag).toMatchObject({ masterOffset: offset, errors: {} });
    expect(info.sources[0].lag.lastError).toBeNull();
    expect((await d.stop()).code).toBe(0);
    // Nothing was refused along the way: the key specs rf log uses were read (COMMAND) too.
    expect(d.output).not.toMatch(/NOPERM|refused/);

    // rf doctor as that user: it cannot read ACLs, says so, and ends with a diagnosis.
    const doctor = await rf(['doctor', '--source', url, '--json']);
    expect(doctor.stderr).not.toContain('internal error');
    expect([0, 1]).toContain(doctor.code);
    const acl = JSON.parse(doctor.stdout).checks.find((c: { name: string }) =>
      c.name.startsWith('ACL user'),
    );
    expect(acl.status).toBe('unknown');

    // rf ship --source checks appendonly as that user before it ships anything (the rewrite
    // cycle it runs is the next test's).
    await expect(checkAppendOnly(redisTarget(master))).resolves.toBeUndefined();
  });

  it('is enough for the AOF rewrite cycle', async () => {
    const master = await scope.master(REDIS7_AOF);
    await createPrintedUser(master);
    const dir = await makeTempDir();
    scope.defer(() => removeTempDir(dir));
    const store = await Store.open(path.join(dir, 'store'), { create: true });
    scope.defer(() => store.close());
    const handle = await startAofCapture({
      store,
      source: 's',
      aofDir: master.dir,
      rewriteAt: 'off',
      redis: redisTarget(master),
      log: quiet,
    });
    scope.defer(() => handle.stop());
    const before = Number((await (await master.client()).info('persistence')).aof_rewrites);
    const result = await handle.rewriteNow();
    expect(result.base.name).toBe('appendonly.aof.2.base.rdb');
    expect(Number((await (await master.client()).info('persistence')).aof_rewrites)).toBe(
      before + 1,
    );
  });

  it('missing a grant, the failures of background jobs are counted and shown', async () => {
    const master = await scope.master(REDIS7_AOF);
    // Without +client|setname the replication stream works, the master watch does not.
    const url = await createPrintedUser(master, '+client|setname');
    const { d, store, metrics } = await listenAs(url, master);
    await waitFor(
      async () =>
        metric(await (await fetch(metrics)).text(), 'rf_errors_total{code="RF_AUTH"}') === 1,
      'the master watch failure to be counted once',
    );
    const info = await rf(['info', '--store', store]);
    expect(info.stdout).toMatch(/errors +RF_AUTH ×1/);
    expect(info.stdout).toMatch(/last: master watch, RF_AUTH, /);
    expect(info.stdout).toContain('user "rf" may not run CLIENT SETNAME');
    const json = JSON.parse((await rf(['info', '--json', '--store', store])).stdout);
    expect(json.sources[0].lag.errors).toEqual({ RF_AUTH: 1 });
    expect((await d.stop()).code).toBe(0);
  });

  it('a failed scheduled rewrite cycle is reported to the daemon for counting', async () => {
    const master = await scope.master(REDIS7_AOF);
    await createPrintedUser(master, '+bgrewriteaof');
    const dir = await makeTempDir();
    scope.defer(() => removeTempDir(dir));
    const store = await Store.open(path.join(dir, 'store'), { create: true });
    scope.defer(() => store.close());
    const target = redisTarget(master);
    const handle = await startAofCapture({
      store,
      source: 's',
      aofDir: master.dir,
      rewriteAt: 'off',
      redis: target,
      log: quiet,
    });
    scope.defer(() => handle.stop());
    const failures: unknown[] = [];
    let calls = 0;
    const scheduler = new RewriteScheduler(
      { hour: 0, minute: 0 },
      'UTC',
      { capture: handle.capture, redis: target },
      quiet,
      (now) => (calls++ === 0 ? now : now + 3_600_000),
      (err) => failures.push(err),
    );
    scheduler.start();
    scope.defer(() => scheduler.stop());
    await waitFor(() => failures.length === 1, 'the cycle to fail');
    expect(String((failures[0] as Error).message)).toMatch(/NOPERM|bgrewriteaof/i);
  });
});
