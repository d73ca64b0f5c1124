import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/logger.js';
import { RepoClient } from '../../src/repo/client.js';
import { latestManifest } from '../../src/repo/manifests.js';
import { RepoUploader } from '../../src/repo/uploader.js';
import { parseRepoUrl } from '../../src/repo/url.js';
import { pruneArchive } from '../../src/retention/prune.js';
import { Store } from '../../src/store/store.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import { type Checkpoint, checkpoint, expectRestoresFromBucket } from '../helpers/repo-archive.js';
import { RfDaemon, rf } from '../helpers/rf.js';
import { S3_ENV, type S3Server, startS3 } from '../helpers/s3.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

/**
 * Retention of the bucket under a simulated clock: the store is pruned to a window start given
 * directly (as `rf listen --retain` computes it from now), and the next upload round drops from
 * the bucket what the store no longer needs, after the manifest that no longer names it. The
 * window start and what follows still restore from the bucket alone.
 */
Object.assign(process.env, S3_ENV);

let s3: S3Server;
let master: RedisServer;
let work: string;
let store: string;
let flags: string[];
const cps: Checkpoint[] = [];

async function writeFor(ms: number, tag: string): Promise<void> {
  const c = await master.client();
  const end = Date.now() + ms;
  for (let i = 0; Date.now() < end; i++) {
    await c.call('SET', `${tag}:${i % 50}`, String(i));
    await c.call('RPUSH', `${tag}:list`, String(i));
    await new Promise((r) => setTimeout(r, 3));
  }
}

const client = () =>
  new RepoClient({
    location: parseRepoUrl(`s3://${s3.bucket}/kept`),
    endpoint: s3.endpoint,
    pathStyle: true,
  });

beforeAll(async () => {
  s3 = await startS3();
  master = await startRedis({ args: ['--repl-diskless-sync-delay', '0'] });
  work = await makeTempDir('rf-repo-retention-');
  store = path.join(work, 'store');
  flags = ['--repo', `s3://${s3.bucket}/kept`, '--s3-endpoint', s3.endpoint, '--s3-path-style'];
  const d = RfDaemon.start(
    [
      '--source',
      master.url,
      '--store',
      store,
      ...flags,
      '--segment-size',
      '2k',
      '--base-every',
      '700ms',
    ],
    S3_ENV,
  );
  await d.waitForLog((l) => l.msg === 'first timeline started from the base');
  for (const tag of ['a', 'b', 'c']) {
    await writeFor(1200, tag);
    cps.push(await checkpoint(master, store));
  }
  expect((await d.stop('SIGTERM')).code, d.output).toBe(0);
}, 120_000);

afterAll(async () => {
  await master?.stop();
  await s3?.stop();
  if (work !== undefined) await removeTempDir(work);
});

describe('--retain prunes the bucket as it prunes the store', () => {
  it('drops what the window no longer needs, and the window start still restores from the bucket alone', async () => {
    const repo = client();
    const before = (await latestManifest(repo, 'default'))!;
    const windowStart = Date.parse(cps[1]!.at);
    const s = await Store.open(store, { create: false });
    try {
      const pruned = await pruneArchive(s, 'default', windowStart, 60_000, silentLogger());
      expect(pruned.segmentsDeleted + pruned.basesDeleted).toBeGreaterThan(0);
      const uploader = new RepoUploader({
        store: s,
        source: 'default',
        client: repo,
        log: silentLogger(),
      });
      uploader.start();
      expect(await uploader.finish(30_000)).toMatchObject({ complete: true });
    } finally {
      await s.close();
    }
    const after = (await latestManifest(client(), 'default'))!;
    expect(after.seq).toBeGreaterThan(before.seq);
    expect(after.packs.length).toBeLessThan(before.packs.length);
    expect(after.files.length).toBeLessThan(before.files.length);
    // The dropped objects are gone from the bucket, and nothing it holds is unnamed.
    const held = new Set<string>();
    for await (const o of client().list('default/')) held.add(o.name);
    for (const p of before.packs.filter((p) => !after.packs.some((q) => q.name === p.name))) {
      expect(held.has(p.name)).toBe(false);
    }
    const verify = await rf(['verify', ...flags, '--json'], { env: S3_ENV, timeoutMs: 60_000 });
    expect(verify.code, verify.stderr + verify.stdout).toBe(0);

    await fs.rm(store, { recursive: true, force: true });
    await expectRestoresFromBucket(flags, cps.slice(1), work);
    const early = await rf(['restore', ...flags, '--until', cps[0]!.at, '--dry-run'], {
      env: S3_ENV,
    });
    expect(early.code, early.stderr).toBe(2);
  });
});
