import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/load.js';
import { freePort } from '../helpers/redis.js';
import { rf } from '../helpers/rf.js';
import { S3_ENV, type S3Server, startS3 } from '../helpers/s3.js';
import { caughtUp, testScope } from '../helpers/scope.js';

/** Each wrong --repo setting is a clear RF_REPO_* naming what to check, and loses nothing locally. */

const scope = testScope();
let s3: S3Server;
beforeAll(async () => {
  s3 = await startS3();
});
afterAll(async () => {
  await s3?.stop();
});

const endpoint = (url: string) => ['--s3-endpoint', url, '--s3-path-style'];
const listenTo = (source: string, store: string, repo: string, at: string) =>
  scope.daemon(['--source', source, '--store', store, '--repo', repo, ...endpoint(at)], S3_ENV);

describe('--repo bad input', () => {
  it('refuses a --repo that is not an s3:// URL, before anything is opened', async () => {
    const store = await scope.storeDir();
    const r = await rf(['listen', '--store', store, '--repo', '/var/backups/rf']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/RF_REPO_URL.*is not an s3:\/\/ URL/);
    expect(r.stderr).toMatch(/s3:\/\/<bucket>\/<prefix>/);
    const info = await rf(['info', '--repo', 's3:///nobucket']);
    expect(info.code).toBe(2);
    expect(info.stderr).toMatch(/RF_REPO_URL.*names no bucket/);
  });

  it('names a bucket that does not exist, and wrong credentials', async () => {
    const missing = await rf(
      ['info', '--repo', 's3://no-such-bucket/p', ...endpoint(s3.endpoint)],
      { env: S3_ENV },
    );
    expect(missing.code).toBe(3);
    expect(missing.stderr).toMatch(/RF_REPO_BUCKET.*no-such-bucket does not exist/);
    const creds = await rf(['info', '--repo', `s3://${s3.bucket}/p`, ...endpoint(s3.endpoint)], {
      env: { ...S3_ENV, AWS_ACCESS_KEY_ID: 'NOT-THE-KEY' },
    });
    expect(creds.code).toBe(3);
    expect(creds.stderr).toMatch(/RF_REPO_AUTH.*refused the credentials/);
    expect(creds.stderr).toMatch(/AWS_ACCESS_KEY_ID/);
  });

  it('names an endpoint that does not answer, connection refused or silent', async () => {
    const refused = await rf(
      [
        'info',
        '--repo',
        `s3://${s3.bucket}/p`,
        ...endpoint(`http://127.0.0.1:${await freePort()}`),
      ],
      {
        env: S3_ENV,
      },
    );
    expect(refused.code).toBe(3);
    expect(refused.stderr).toMatch(/RF_REPO_UNREACHABLE.*does not answer/);
    expect(refused.stderr).toMatch(/--s3-endpoint/);
  });

  it('rf listen stops at start on a missing bucket, leaving the store as it was', async () => {
    const master = await scope.master();
    const store = await scope.storeDir();
    const first = scope.daemon(['--source', master.url, '--store', store]);
    await first.waitForLog((l) => l.msg === 'first timeline started from the base');
    const c = await master.client();
    await c.call('SET', 'kept', 'yes');
    await caughtUp(master);
    expect((await first.stop('SIGTERM')).code).toBe(0);
    const before = await rf(['info', '--store', store, '--json']);

    const d = listenTo(master.url, store, 's3://no-such-bucket/p', s3.endpoint);
    const exit = await d.exited();
    expect(exit.code, d.output).toBe(3);
    expect(d.output).toMatch(/RF_REPO_BUCKET/);
    const after = await rf(['info', '--store', store, '--json']);
    expect(JSON.parse(after.stdout).sources[0].timelines).toEqual(
      JSON.parse(before.stdout).sources[0].timelines,
    );
  });

  it('rf listen keeps capturing while the endpoint does not answer, and shows the backlog', async () => {
    const master = await scope.master();
    const store = await scope.storeDir();
    // Accepts connections and never answers: every request times out.
    const held = new Set<net.Socket>();
    const silent = net.createServer((socket) => {
      held.add(socket);
      socket.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    scope.defer(async () => {
      for (const s of held) s.destroy();
      await new Promise((resolve) => silent.close(resolve));
    });
    const port = (silent.address() as net.AddressInfo).port;
    const d = listenTo(master.url, store, `s3://${s3.bucket}/p`, `http://127.0.0.1:${port}`);
    await d.waitForLog((l) => l.msg === 'first timeline started from the base', 40_000);
    const c = await master.client();
    for (let i = 0; i < 100; i++) await c.call('SET', `k${i}`, 'v'.repeat(100));
    await caughtUp(master);
    await waitFor(
      async () => {
        const r = await rf(['info', '--store', store, '--json']);
        const repo = (
          JSON.parse(r.stdout) as { sources: { repo: { backlogBytes: number } | null }[] }
        ).sources[0]?.repo;
        return repo !== null && repo !== undefined && repo.backlogBytes > 0;
      },
      'rf info to show the upload backlog',
      40_000,
    );
  });
});
