import { promises as fs } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { WriteLoad, waitFor } from '../helpers/load.js';
import { startProxy } from '../helpers/proxy.js';
import { type Checkpoint, checkpoint, expectRestoresFromBucket } from '../helpers/repo-archive.js';
import { rf } from '../helpers/rf.js';
import { S3_ENV, startFlakyFront, startS3, waitForStreamPack } from '../helpers/s3.js';
import { testScope } from '../helpers/scope.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

/**
 * The bucket misbehaves while rf listen --repo captures under load: the link to it is cut
 * again and again, or it holds every request and then answers 503. Capture goes on, the
 * uploads catch up once it is well, and from the bucket alone every checkpoint restores.
 */

const scope = testScope();

async function setUp() {
  const s3 = await startS3();
  scope.defer(() => s3.stop());
  const master = await scope.master();
  const work = await makeTempDir('rf-repo-faults-');
  scope.defer(() => removeTempDir(work));
  return { s3, master, work, store: path.join(work, 'store') };
}

async function backlog(store: string): Promise<{ backlogBytes: number; errors: number } | null> {
  const r = await rf(['info', '--store', store, '--json']);
  return (
    (
      JSON.parse(r.stdout) as {
        sources: { repo: { backlogBytes: number; errors: number } | null }[];
      }
    ).sources[0]?.repo ?? null
  );
}

describe('rf listen --repo against a bucket that misbehaves', () => {
  it('keeps capturing through cut connections, and the bucket alone restores', async () => {
    const { s3, master, work, store } = await setUp();
    const proxy = await startProxy(s3.port);
    scope.defer(() => proxy.close());
    const flags = [
      '--repo',
      `s3://${s3.bucket}/cut`,
      '--s3-endpoint',
      `http://127.0.0.1:${proxy.port}`,
      '--s3-path-style',
    ];
    const d = scope.daemon(
      ['--source', master.url, '--store', store, ...flags, '--segment-size', '16k'],
      S3_ENV,
    );
    await d.waitForLog((l) => l.msg === 'first timeline started from the base');
    const load = new WriteLoad(await master.client(), 50, 2);
    load.start();
    // Cut every link to the bucket, then wait for rf to open a new one, five times over. (Waiting
    // for a new link first would wait forever when rf keeps uploading over the one it has.)
    for (let i = 0; i < 5; i++) {
      const seen = proxy.connections;
      proxy.cut();
      // A request on a link cut while idle fails only once its socket times out (30 s).
      await waitFor(
        async () => proxy.connections > seen,
        `rf to reach the bucket again after cut ${i + 1}`,
        60_000,
      );
    }
    await load.stop();
    expect(load.errors).toEqual([]);
    const cps: Checkpoint[] = [await checkpoint(master, store)];
    await waitFor(
      async () => (await backlog(store))?.backlogBytes === 0,
      'the uploads to catch up',
      60_000,
    );
    expect((await d.stop('SIGTERM')).code, d.output).toBe(0);
    await fs.rm(store, { recursive: true, force: true });
    await expectRestoresFromBucket(flags, cps, work);
    // Each cut may cost a request's 30 s socket timeout: the waits above allow for it, and so
    // must the test.
  }, 240_000);

  it('is killed with SIGKILL mid-upload behind a cutting link, restarts, and the bucket alone restores every checkpoint', async () => {
    const { s3, master, work, store } = await setUp();
    const proxy = await startProxy(s3.port);
    scope.defer(() => proxy.close());
    const flags = [
      '--repo',
      `s3://${s3.bucket}/killed`,
      '--s3-endpoint',
      `http://127.0.0.1:${proxy.port}`,
      '--s3-path-style',
    ];
    const args = ['--source', master.url, '--store', store, ...flags, '--segment-size', '16k'];
    const first = scope.daemon(args, S3_ENV);
    await first.waitForLog((l) => l.msg === 'first timeline started from the base');
    const client = await master.client();
    const cps: Checkpoint[] = [];
    for (let i = 0; i < 200; i++) await client.call('SET', `before:${i}`, String(i));
    cps.push(await checkpoint(master, store));
    const load = new WriteLoad(client, 50, 2);
    load.start();
    await waitForStreamPack(s3);
    // More goes up each round under the load: the link is cut and rf killed while it does.
    proxy.cut();
    await first.stop('SIGKILL');
    await load.stop();
    expect(load.errors).toEqual([]);

    const second = scope.daemon(args, S3_ENV);
    for (let i = 0; i < 200; i++) await client.call('SET', `after:${i}`, String(i));
    cps.push(await checkpoint(master, store));
    const more = new WriteLoad(client, 50, 2);
    more.start();
    // The restarted rf has reached the bucket through the proxy: its links are cut under load too.
    await waitFor(
      async () => (await backlog(store)) !== null,
      'the restarted rf to report uploads',
    );
    proxy.cut();
    await more.stop();
    expect(more.errors).toEqual([]);
    cps.push(await checkpoint(master, store));
    await waitFor(
      async () => (await backlog(store))?.backlogBytes === 0,
      'the uploads to catch up',
      90_000,
    );
    expect((await second.stop('SIGTERM')).code, second.output).toBe(0);
    await fs.rm(store, { recursive: true, force: true });
    const digests = new Set(cps.map((c) => c.digest));
    expect(digests.size).toBe(cps.length);
    await expectRestoresFromBucket(flags, cps, work);
  }, 240_000);

  it('a manifest that landed but whose replies were lost: written again as it was, and the uploads go on', async () => {
    const { s3, master, work, store } = await setUp();
    const front = await startFlakyFront(s3.port);
    scope.defer(() => front.close());
    const flags = [
      '--repo',
      `s3://${s3.bucket}/lost`,
      '--s3-endpoint',
      front.endpoint,
      '--s3-path-style',
    ];
    // Both attempts the client makes at the first manifest: stored by the server, unanswered.
    front.loseReplies(/\/manifest\//, 2);
    const d = scope.daemon(
      ['--source', master.url, '--store', store, ...flags, '--segment-size', '16k'],
      S3_ENV,
    );
    await d.waitForLog((l) => l.msg === 'first timeline started from the base');
    const client = await master.client();
    for (let i = 0; i < 300; i++) await client.call('SET', `k:${i}`, 'x'.repeat(100));
    const cps: Checkpoint[] = [await checkpoint(master, store)];
    await waitFor(
      async () => {
        const r = await backlog(store);
        return r !== null && r.errors > 0 && r.backlogBytes === 0;
      },
      'the uploads to catch up after the lost replies',
      60_000,
    );
    expect(front.lost).toBe(2);
    const failures = d.lines.filter((l) => l.msg === 'repo: upload failed; will try again');
    expect(failures.length).toBeGreaterThan(0);
    expect(JSON.stringify(failures)).not.toContain('RF_REPO_CONFLICT');
    expect((await d.stop('SIGTERM')).code, d.output).toBe(0);
    await fs.rm(store, { recursive: true, force: true });
    await expectRestoresFromBucket(flags, cps, work);
  });

  it('keeps capturing while the bucket hangs and answers 503, and catches up once it is well', async () => {
    const { s3, master, work, store } = await setUp();
    const front = await startFlakyFront(s3.port, 1_500);
    scope.defer(() => front.close());
    const flags = [
      '--repo',
      `s3://${s3.bucket}/slow`,
      '--s3-endpoint',
      front.endpoint,
      '--s3-path-style',
    ];
    const d = scope.daemon(
      ['--source', master.url, '--store', store, ...flags, '--segment-size', '16k'],
      S3_ENV,
    );
    await d.waitForLog((l) => l.msg === 'first timeline started from the base');
    front.mode = '503';
    const load = new WriteLoad(await master.client(), 50, 2);
    load.start();
    await waitFor(
      async () => {
        const r = await backlog(store);
        return r !== null && r.errors > 0 && r.backlogBytes > 0;
      },
      'rf info to show failed uploads and a backlog',
      60_000,
    );
    await load.stop();
    expect(load.errors).toEqual([]);
    const cps: Checkpoint[] = [await checkpoint(master, store)];
    expect(front.refused).toBeGreaterThan(0);
    front.mode = 'ok';
    await waitFor(
      async () => (await backlog(store))?.backlogBytes === 0,
      'the uploads to catch up',
      90_000,
    );
    expect((await d.stop('SIGTERM')).code, d.output).toBe(0);
    await fs.rm(store, { recursive: true, force: true });
    await expectRestoresFromBucket(flags, cps, work);
  });
});
