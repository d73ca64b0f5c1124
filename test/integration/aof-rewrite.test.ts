import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { type AofHandle, startAofCapture } from '../../src/aof/index.js';
import { parseManifest } from '../../src/aof/manifest.js';
import { RewriteScheduler, runRewriteCycle } from '../../src/aof/rewrite.js';
import { isRfError } from '../../src/errors.js';
import type { RedisClient } from '../../src/resp/client.js';
import { Store } from '../../src/store/store.js';
import { quiet, REDIS7_AOF, storedBases, storedFiles } from '../helpers/aof.js';
import { waitFor } from '../helpers/load.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import { lacks } from '../helpers/redis-bin.js';
import { testScope } from '../helpers/scope.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

const scope = testScope();

async function setup(): Promise<{
  redis: RedisServer;
  client: RedisClient;
  store: Store;
  handle: AofHandle;
  target: { endpoint: { host: string; port: number; db: number; tls: boolean } };
}> {
  const redis = await startRedis({ args: REDIS7_AOF });
  scope.defer(() => redis.stop());
  const dir = await makeTempDir();
  const store = await Store.open(dir, { create: true });
  scope.defer(async () => {
    await store.close();
    await removeTempDir(dir);
  });
  const target = { endpoint: { host: redis.host, port: redis.port, db: 0, tls: false } };
  const handle = await startAofCapture({
    store,
    source: 's',
    aofDir: redis.dir,
    lingerMs: 10,
    pollMs: 10,
    rewriteAt: 'off',
    redis: target,
    log: quiet,
  });
  scope.defer(() => handle.stop());
  const client = await redis.client();
  for (let i = 0; i < 20; i++) await client.call('SET', `k${i}`, 'v');
  return { redis, client, store, handle, target };
}

describe.skipIf(lacks('multi-part AOF'))('the AOF rewrite cycle, on a multi-part AOF', () => {
  it('runs at the scheduled time: BGREWRITEAOF, then the new base is a stored restore point', async () => {
    const { client, store, handle, target } = await setup();
    const before = Number((await client.info('persistence')).aof_rewrites);
    let calls = 0;
    const scheduler = new RewriteScheduler(
      { hour: 0, minute: 0 },
      'UTC',
      { capture: handle.capture, redis: target },
      quiet,
      (now) => (calls++ === 0 ? now + 300 : now + 3_600_000),
    );
    scheduler.start();
    scope.defer(() => scheduler.stop());
    await waitFor(() => scheduler.status().last !== null, 'the first cycle');
    expect(scheduler.status().last).toMatchObject({
      ok: true,
      base: { name: 'appendonly.aof.2.base.rdb' },
    });
    expect(scheduler.status().next).toBeGreaterThan(Date.now() + 3_000_000);
    expect(Number((await client.info('persistence')).aof_rewrites)).toBe(before + 1);
    expect((await storedBases(store, 's')).map((b) => b.meta.name)).toEqual([
      'appendonly.aof.1.base.rdb',
      'appendonly.aof.2.base.rdb',
    ]);
  });

  it('reports a rewrite Redis fails as RF_AOF_REWRITE, and the capture goes on', async () => {
    const { redis, client, store, handle, target } = await setup();
    await client.call('CONFIG', 'SET', 'rdb-key-save-delay', '1000000');
    const cycle = runRewriteCycle({
      capture: handle.capture,
      redis: target,
      log: quiet,
      pollMs: 20,
    });
    cycle.catch(() => undefined);
    await waitFor(
      async () => (await client.info('persistence')).aof_rewrite_in_progress === '1',
      'the rewrite child',
    );
    // The rewrite child dies (as after an OOM kill): Redis records aof_last_bgrewrite_status:err.
    const child = execFileSync('pgrep', ['-P', String(redis.pid)], { encoding: 'utf8' })
      .trim()
      .split('\n')[0]!;
    process.kill(Number(child), 'SIGKILL');
    const err = await cycle.then(
      () => null,
      (e: unknown) => e,
    );
    expect(isRfError(err, 'RF_AOF_REWRITE')).toBe(true);
    expect((err as Error).message).toContain('aof_last_bgrewrite_status:err');
    expect((err as { hint?: string }).hint).toMatch(/Redis log/);

    await client.call('CONFIG', 'SET', 'rdb-key-save-delay', '0');
    await client.call('SET', 'after', 'failure');
    // The failed rewrite left two incr files (aof.c keeps both as type i): both are stored whole.
    const dir = path.join(redis.dir, 'appendonlydir');
    const incrs = parseManifest(
      readFileSync(path.join(dir, 'appendonly.aof.manifest')),
      'manifest',
    ).incrs;
    expect(incrs.map((e) => e.seq)).toEqual([1, 2]);
    await waitFor(async () => {
      const files = await storedFiles(store, 's');
      return incrs.every((e, i) => files[i]?.bytes.equals(readFileSync(path.join(dir, e.name))));
    }, 'writes after the failure stored');
    expect(handle.status().stopped).toBe(false);
  });

  it('gives up on a rewrite that outlasts its timeout with RF_AOF_REWRITE', async () => {
    const { client, handle, target } = await setup();
    await client.call('CONFIG', 'SET', 'rdb-key-save-delay', '1000000');
    const err = await runRewriteCycle({
      capture: handle.capture,
      redis: target,
      log: quiet,
      pollMs: 20,
      timeoutMs: 300,
    }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(isRfError(err, 'RF_AOF_REWRITE')).toBe(true);
    expect((err as Error).message).toContain('did not finish within 300 ms');
  });
});
