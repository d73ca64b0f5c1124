import { promises as fs } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/load.js';
import { bootedDigest, type RedisServer } from '../helpers/redis.js';
import { type RfResult, rf } from '../helpers/rf.js';
import { S3_ENV, startS3 } from '../helpers/s3.js';
import { caughtUp, testScope } from '../helpers/scope.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

/**
 * rf listen --aof-dir --repo --local-retain: the AOF chunks go to the bucket with the stream, and
 * leave the store by the same rule as its segments: once the bucket holds them and no restore
 * inside the local window replays them (after a rewrite, every later restore starts from the
 * new AOF base). A restore from the store's AOF record of an older time is then refused with
 * RF_REPO_ONLY; the bucket alone restores it.
 */

const scope = testScope();

interface Checkpoint {
  at: string;
  digest: string;
}

async function writeFor(master: RedisServer, ms: number, tag: string): Promise<void> {
  const c = await master.client();
  const end = Date.now() + ms;
  for (let i = 0; Date.now() < end; i++) {
    await c.call('SET', `${tag}:${i % 50}`, `${tag}-${i}-${'x'.repeat(64)}`);
    await c.call('RPUSH', `${tag}:list`, String(i));
    await new Promise((r) => setTimeout(r, 3));
  }
}

const aofBytes = async (store: string): Promise<number> =>
  Number(
    JSON.parse((await rf(['info', '--store', store, '--json'])).stdout).sources[0]?.aof?.bytes,
  );

/** The bytes of the master's current incr files. */
async function incrBytes(master: RedisServer): Promise<number> {
  const dir = path.join(master.dir, 'appendonlydir');
  let size = 0;
  for (const f of (await fs.readdir(dir)).filter((x) => x.endsWith('.incr.aof')))
    size += (await fs.stat(path.join(dir, f))).size;
  return size;
}

/**
 * The master's digest once the store's AOF chunks hold every write (`before`: the bytes of incr
 * files a rewrite has since removed from the master); writes resume in the next second.
 */
async function checkpoint(master: RedisServer, store: string, before = 0): Promise<Checkpoint> {
  await caughtUp(master);
  await waitFor(
    async () => (await aofBytes(store)) === before + (await incrBytes(master)),
    'the AOF chunks to hold every byte of the incr files',
    60_000,
  );
  const digest = String(await (await master.client()).call('DEBUG', 'DIGEST'));
  const now = Date.now();
  // The AOF's #TS annotations have second precision.
  await new Promise((r) => setTimeout(r, 1000 - (now % 1000) + 20));
  return { at: new Date(now).toISOString(), digest };
}

const restoreAof = (flags: string[], cp: Checkpoint, out: string) =>
  rf(['restore', ...flags, '--from', 'aof', '--until', cp.at, '--out', out], {
    env: S3_ENV,
    timeoutMs: 60_000,
  });

describe('rf listen --aof-dir --repo --local-retain', () => {
  it('uploads the AOF chunks and removes from the store those only older restores replay; the bucket restores them', async () => {
    const s3 = await startS3();
    scope.defer(() => s3.stop());
    const master = await scope.master(['--appendonly', 'yes', '--aof-timestamp-enabled', 'yes']);
    const work = await makeTempDir('rf-repo-local-aof-');
    scope.defer(() => removeTempDir(work));
    const store = path.join(work, 'store');
    const repoFlags = [
      '--repo',
      `s3://${s3.bucket}/aof`,
      '--s3-endpoint',
      s3.endpoint,
      '--s3-path-style',
    ];
    const d = scope.daemon(
      [
        '--source',
        master.url,
        '--store',
        store,
        ...repoFlags,
        '--aof-dir',
        master.dir,
        '--chunk-size',
        '4k',
        '--rewrite-at',
        'off',
        '--segment-size',
        '2k',
        '--local-retain',
        '1s',
      ],
      S3_ENV,
    );
    await d.waitForLog((l) => l.msg === 'first timeline started from the base');
    await writeFor(master, 800, 'a');
    const early = await checkpoint(master, store);
    const beforeRewrite = await aofBytes(store);
    // A rewrite: a new AOF base and incr file; every restore after it starts from them.
    const c = await master.client();
    await c.call('BGREWRITEAOF');
    await waitFor(async () => {
      const p = await c.info('persistence');
      return p.aof_rewrite_in_progress === '0' && p.aof_rewrite_scheduled === '0';
    }, 'the rewrite to finish');
    await writeFor(master, 1500, 'b');
    const late = await checkpoint(master, store, beforeRewrite);
    expect(late.digest).not.toBe(early.digest);
    // The AOF record reaches as far as its last write's second: writes after the checkpoint put
    // it inside, and no restore of it may show them.
    await writeFor(master, 1200, 'c');
    await checkpoint(master, store, beforeRewrite);

    const storeFlags = ['--store', store];
    let refused: RfResult | undefined;
    await waitFor(
      async () => {
        refused = await restoreAof(storeFlags, early, path.join(work, `early-${Date.now()}`));
        return refused.code !== 0;
      },
      'the early AOF chunks to leave the store',
      90_000,
    );
    expect(refused?.code, refused?.stderr).toBe(3);
    expect(refused?.stderr).toMatch(/RF_REPO_ONLY.*AOF chunks/);
    expect(refused?.stderr).toContain('--repo s3://');
    expect(
      d.lines.some(
        (l) =>
          l.msg === 'local retention: removed what the bucket holds from the store' &&
          Number((l as { chunks?: number }).chunks) > 0,
      ),
      d.output,
    ).toBe(true);
    // What later restores replay stays, and a local verify counts what left as no damage.
    const out = path.join(work, 'late');
    const r = await restoreAof(storeFlags, late, out);
    expect(r.code, r.stderr).toBe(0);
    expect(await bootedDigest(out)).toBe(late.digest);
    const v = await rf(['verify', '--store', store], { timeoutMs: 60_000 });
    expect(v.code, v.stderr + v.stdout).toBe(0);

    // The bucket alone: both checkpoints from its AOF record.
    expect((await d.stop('SIGTERM')).code, d.output).toBe(0);
    await fs.rm(store, { recursive: true, force: true });
    for (const [i, cp] of [early, late].entries()) {
      const from = path.join(work, `bucket-${i}`);
      const b = await restoreAof(repoFlags, cp, from);
      expect(b.code, b.stderr).toBe(0);
      expect(b.stderr + b.stdout).not.toMatch(/RF_/);
      expect(await bootedDigest(from)).toBe(cp.digest);
    }
  }, 240_000);
});
