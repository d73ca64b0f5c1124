import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { bootedDigest } from '../helpers/redis.js';
import { hasFeature, lacks, serverBuild } from '../helpers/redis-bin.js';
import { rf } from '../helpers/rf.js';
import { caughtUp, testScope } from '../helpers/scope.js';
import { workloadPhase } from '../helpers/workload.js';

/**
 * `rf restore --out` writes what the archived server loads: Redis 7's appendonlydir, or for
 * Redis 6 one appendonly.aof (RDB preamble, then the commands). Run against whichever
 * redis-server the harness uses (RF_TEST_REDIS_BIN_DIR), so a 6.2 build checks the Redis 6 form.
 */

const scope = testScope();

async function archived() {
  const master = await scope.master();
  const client = await master.client();
  await workloadPhase(client, 0);
  const store = await scope.storeDir();
  const daemon = scope.daemon(['--source', master.url, '--store', store, '--flush-interval', '10']);
  await daemon.waitForLog((l) => l.msg === 'first timeline started from the base');
  await workloadPhase(client, 1);
  await caughtUp(master);
  const digest = String(await client.call('DEBUG', 'DIGEST'));
  const at = new Date().toISOString();
  await new Promise((r) => setTimeout(r, 5));
  await client.call('SET', 'after-the-point', '1');
  await caughtUp(master);
  return { master, store, digest, at, daemon };
}

describe('rf restore --out writes the layout of the archived server', () => {
  const { flavor, version } = serverBuild();
  const redis6 = !hasFeature('multi-part AOF');

  it(`records the server (${flavor} ${version}) and writes its layout by default, booting with the master's digest`, async () => {
    const { store, digest, at, daemon } = await archived();
    const logged = daemon.lines.find((l) => /^archiving /.test(String(l.msg)));
    expect(logged?.msg).toBe(`archiving ${flavor} ${version}`);

    const info = JSON.parse((await rf(['info', '--store', store, '--json'])).stdout);
    expect(info.sources[0].server).toMatchObject({ name: flavor, version, mode: 'standalone' });
    expect(info.sources[0].bases[0].rdbVersion).toBeGreaterThanOrEqual(9);

    const out = path.join(path.dirname(store), 'out');
    const res = await rf(['restore', '--store', store, '--until', at, '--out', out, '--json']);
    expect(res.code, res.stderr).toBe(0);
    const summary = JSON.parse(res.stdout);
    expect(summary.into.layout).toBe(redis6 ? 'redis6' : 'redis7');
    expect(readdirSync(out)).toEqual([redis6 ? 'appendonly.aof' : 'appendonlydir']);
    expect(summary.into.command).toBe(
      `redis-server --dir ${out} --appendonly yes${redis6 ? ' --aof-use-rdb-preamble yes' : ''}`,
    );
    expect(await bootedDigest(out)).toBe(digest);
  });

  it.skipIf(lacks('multi-part AOF'))(
    '--layout redis6 writes one appendonly.aof with an RDB preamble, which Redis 7 boots too',
    async () => {
      const { store, digest, at } = await archived();
      const out = path.join(path.dirname(store), 'out6');
      const res = await rf([
        'restore',
        '--store',
        store,
        '--until',
        at,
        '--out',
        out,
        '--layout',
        'redis6',
      ]);
      expect(res.code, res.stderr).toBe(0);
      expect(res.stdout).toContain('a Redis 6 appendonly.aof: --layout redis6');
      expect(res.stdout).toContain('--aof-use-rdb-preamble yes');
      const file = path.join(out, 'appendonly.aof');
      expect(readFileSync(file).subarray(0, 5).toString('latin1')).toBe('REDIS');
      expect(existsSync(path.join(out, 'appendonlydir'))).toBe(false);
      expect(await bootedDigest(out)).toBe(digest);
    },
  );

  it('refuses --layout without --out, and a layout it does not write', async () => {
    const store = await scope.storeDir();
    const alone = await rf([
      'restore',
      '--store',
      store,
      '--until',
      'latest',
      '--dry-run',
      '--layout',
      'redis6',
    ]);
    expect(alone.code).toBe(2);
    expect(alone.stderr).toContain('--layout says how --out writes its directory');
    const unknown = await rf([
      'restore',
      '--store',
      store,
      '--until',
      'latest',
      '--out',
      path.join(path.dirname(store), 'x'),
      '--layout',
      'redis5',
    ]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/redis6.*redis7/);
  });
});
