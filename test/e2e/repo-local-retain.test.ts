import { existsSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/load.js';
import type { RedisServer } from '../helpers/redis.js';
import { bootedDigest } from '../helpers/redis.js';
import {
  type Checkpoint,
  checkpoint,
  expectRestoresFromBucket,
  QUICK_LOCAL_RETAIN,
} from '../helpers/repo-archive.js';
import { type RfDaemon, type RfResult, rf } from '../helpers/rf.js';
import { S3_ENV, startFlakyFront, startS3 } from '../helpers/s3.js';
import { testScope } from '../helpers/scope.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

/**
 * rf listen --repo --local-retain: once the bucket holds them, the bytes no restore inside the
 * local window needs leave the store. A restore from the store of a time only the bucket still
 * holds is refused with RF_REPO_ONLY naming --repo; the bucket restores it. A bucket that does
 * not answer holds nothing, so nothing leaves the store.
 */

const scope = testScope();

async function writeFor(master: RedisServer, ms: number, tag: string): Promise<void> {
  const c = await master.client();
  const end = Date.now() + ms;
  for (let i = 0; Date.now() < end; i++) {
    await c.call('SET', `${tag}:${i % 50}`, `${tag}-${i}-${'x'.repeat(64)}`);
    await c.call('RPUSH', `${tag}:list`, String(i));
    await new Promise((r) => setTimeout(r, 3));
  }
}

async function setUp(endpoint?: (s3Port: number) => Promise<string>) {
  const s3 = await startS3();
  scope.defer(() => s3.stop());
  const master = await scope.master();
  const work = await makeTempDir('rf-repo-local-');
  scope.defer(() => removeTempDir(work));
  const store = path.join(work, 'store');
  const flags = [
    '--repo',
    `s3://${s3.bucket}/local`,
    '--s3-endpoint',
    endpoint === undefined ? s3.endpoint : await endpoint(s3.port),
    '--s3-path-style',
  ];
  const d = scope.daemon(
    ['--source', master.url, '--store', store, ...flags, ...QUICK_LOCAL_RETAIN],
    S3_ENV,
  );
  await d.waitForLog((l) => l.msg === 'first timeline started from the base');
  return { s3, master, work, store, flags, d };
}

/** Writes, a checkpoint, then more writes and fresh bases, so the checkpoint's base is old. */
async function archiveWithHistory(master: RedisServer, store: string, d: RfDaemon) {
  await writeFor(master, 800, 'a');
  const early = await checkpoint(master, store);
  const bases = d.lines.filter((l) => l.msg === 'fresh base taken').length;
  await writeFor(master, 1500, 'b');
  await waitFor(
    async () => d.lines.filter((l) => l.msg === 'fresh base taken').length >= bases + 2,
    'two fresh bases after the checkpoint',
  );
  const late = await checkpoint(master, store);
  return { early, late };
}

const restoreLocal = (store: string, cp: Checkpoint, out: string) =>
  rf(['restore', '--store', store, '--until', cp.at, '--out', out], { timeoutMs: 60_000 });

const offloaded = (d: RfDaemon) =>
  d.lines.some((l) => l.msg === 'local retention: removed what the bucket holds from the store');

describe('rf listen --repo --local-retain', () => {
  it('refuses --local-retain without --repo (RF_USAGE, exit 2) and writes nothing', async () => {
    const work = await makeTempDir('rf-repo-local-');
    scope.defer(() => removeTempDir(work));
    const store = path.join(work, 'store');
    const r = await rf([
      'listen',
      '--source',
      'redis://127.0.0.1:1',
      '--store',
      store,
      '--local-retain',
      '1h',
    ]);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/RF_USAGE.*--local-retain/);
    expect(r.stderr).toContain('--repo s3://');
    expect(existsSync(store)).toBe(false);
  });

  it('removes from the store what the bucket holds; the store refuses that time, naming --repo, and the bucket restores it', async () => {
    const { master, work, store, flags, d } = await setUp();
    const { early, late } = await archiveWithHistory(master, store, d);
    let refused: RfResult | undefined;
    await waitFor(
      async () => {
        refused = await restoreLocal(store, early, path.join(work, `early-${Date.now()}`));
        return refused.code !== 0;
      },
      'the early checkpoint to leave the store',
      60_000,
    );
    expect(offloaded(d), d.output).toBe(true);
    expect(refused?.code, refused?.stderr).toBe(3);
    expect(refused?.stderr).toMatch(/RF_REPO_ONLY/);
    expect(refused?.stderr).toContain('--repo s3://');
    // What is recent stays local, and a local verify counts what left as no damage.
    const out = path.join(work, 'latest');
    const r = await rf(['restore', '--store', store, '--until', 'latest', '--out', out], {
      timeoutMs: 60_000,
    });
    expect(r.code, r.stderr).toBe(0);
    expect(await bootedDigest(out)).toBe(late.digest);
    const v = await rf(['verify', '--store', store], { timeoutMs: 60_000 });
    expect(v.code, v.stderr + v.stdout).toBe(0);
    expect((await d.stop('SIGTERM')).code, d.output).toBe(0);
    await expectRestoresFromBucket(flags, [early, late], work);
  });

  it('removes nothing while the bucket does not answer, and only once it holds the data', async () => {
    let front: Awaited<ReturnType<typeof startFlakyFront>> | undefined;
    const { master, work, store, d } = await setUp(async (port) => {
      front = await startFlakyFront(port, 300);
      front.mode = '503';
      scope.defer(() => front?.close());
      return front.endpoint;
    });
    const { early } = await archiveWithHistory(master, store, d);
    // The local window (1 s) has long passed for the early checkpoint, and bases came after it.
    await waitFor(async () => front!.refused > 3, 'the bucket to refuse uploads');
    const out = path.join(work, 'early-local');
    const r = await restoreLocal(store, early, out);
    expect(r.code, r.stderr).toBe(0);
    expect(await bootedDigest(out)).toBe(early.digest);
    expect(offloaded(d), d.output).toBe(false);
    // The check can fail: once the bucket holds it, the early time leaves the store.
    front!.mode = 'ok';
    await waitFor(async () => offloaded(d), 'the store to drop what the bucket now holds', 60_000);
  });
});
