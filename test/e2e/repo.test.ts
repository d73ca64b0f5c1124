import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RedisClient } from '../../src/resp/client.js';
import { WriteLoad } from '../helpers/load.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import {
  type Checkpoint,
  checkpoint as checkpointOf,
  expectRestoresFromBucket,
} from '../helpers/repo-archive.js';
import { RfDaemon, rf } from '../helpers/rf.js';
import { bucketBytes, S3_ENV, type S3Server, startS3, waitForStreamPack } from '../helpers/s3.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';
import { workloadPhase } from '../helpers/workload.js';

/**
 * The archive leaves the host: rf listen --repo uploads under load, is killed with SIGKILL in
 * the middle of it and started again, then stops on SIGTERM; the local store is deleted, and
 * from the bucket alone every checkpoint restores to the master's DEBUG DIGEST. Everything is
 * sealed with a key: a canary value is nowhere in the bucket's bytes, and a read without the
 * key is refused.
 */

const CANARY = `canary-${randomBytes(8).toString('hex')}`;
let s3: S3Server;
let master: RedisServer;
let client: RedisClient;
let work: string;
let store: string;
let keyFile: string;
let repoFlags: string[];
const checkpoints: Checkpoint[] = [];

async function checkpoint(): Promise<void> {
  checkpoints.push(await checkpointOf(master, store));
}

function listen(): RfDaemon {
  return RfDaemon.start(
    [
      '--source',
      master.url,
      '--store',
      store,
      ...repoFlags,
      '--repo-key-file',
      keyFile,
      '--segment-size',
      '16k',
    ],
    S3_ENV,
  );
}

const uploadedPack = (l: { msg?: string }) => l.msg === 'repo: every sealed part is in the bucket';

beforeAll(async () => {
  s3 = await startS3();
  master = await startRedis({ args: ['--repl-diskless-sync-delay', '0'] });
  client = await master.client();
  work = await makeTempDir('rf-repo-e2e-');
  store = path.join(work, 'store');
  keyFile = path.join(work, 'repo.key');
  await fs.writeFile(keyFile, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
  repoFlags = s3.flags('archives/cache-1');
  await workloadPhase(client, 0);
  await client.call('SET', 'canary:base', CANARY);

  const first = listen();
  await first.waitForLog((l) => l.msg === 'first timeline started from the base');
  await workloadPhase(client, 1);
  await checkpoint();
  // Under load, and killed while uploads are under way.
  const load = new WriteLoad(client, 50, 2);
  load.start();
  await waitForStreamPack(s3);
  await first.stop('SIGKILL');
  await load.stop();
  await client.call('SET', 'canary:stream', CANARY);
  await workloadPhase(client, 2);

  const second = listen();
  await workloadPhase(client, 3);
  await checkpoint();
  const more = new WriteLoad(client, 50, 2);
  more.start();
  await new Promise((r) => setTimeout(r, 500));
  await more.stop();
  await checkpoint();
  const exit = await second.stop('SIGTERM');
  expect(exit.code, second.output).toBe(0);
  expect(second.lines.some(uploadedPack), second.output).toBe(true);
  // The host is gone: nothing of the store is left.
  await fs.rm(store, { recursive: true, force: true });
}, 120_000);

afterAll(async () => {
  await master?.stop();
  await s3?.stop();
  if (work !== undefined) await removeTempDir(work);
});

describe('rf listen --repo, then the bucket alone', () => {
  it('the checkpoints differ from each other (the oracle can fail)', () => {
    expect(new Set(checkpoints.map((c) => c.digest)).size).toBe(checkpoints.length);
  });

  it('restores every checkpoint from the bucket alone to the master’s DEBUG DIGEST', async () => {
    await expectRestoresFromBucket([...repoFlags, '--repo-key-file', keyFile], checkpoints, work);
  });

  it('rf info --repo reads the manifests: the restorable range covers every checkpoint', async () => {
    const r = await rf(['info', ...repoFlags, '--repo-key-file', keyFile, '--json'], {
      env: S3_ENV,
    });
    expect(r.code, r.stderr).toBe(0);
    const info = JSON.parse(r.stdout) as {
      sources: { name: string; restorable: { from: string; until: string }[] }[];
    };
    const ranges = info.sources[0]!.restorable;
    for (const cp of checkpoints) {
      expect(ranges.some((x) => x.from <= cp.at && cp.at <= x.until)).toBe(true);
    }
  });

  it('rf log --repo finds a write in the bucket alone', async () => {
    const r = await rf(['log', ...repoFlags, '--repo-key-file', keyFile, '--key', 'canary:*'], {
      env: S3_ENV,
      timeoutMs: 60_000,
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('canary:stream');
    expect(r.stdout).toContain(CANARY);
  });

  it('keeps the canary out of the bucket’s bytes, and refuses a read without the key or with another', async () => {
    const bytes = await bucketBytes(s3);
    expect(bytes.length).toBeGreaterThan(1000);
    expect(bytes.includes(Buffer.from(CANARY))).toBe(false);
    // The check itself can fail: the canary is in the master.
    expect(String(await client.call('GET', 'canary:stream'))).toBe(CANARY);

    const without = await rf(['restore', ...repoFlags, '--until', 'latest', '--dry-run'], {
      env: S3_ENV,
    });
    expect(without.code).toBe(2);
    expect(without.stderr).toMatch(/RF_REPO_KEY.*no key was given/);
    const other = path.join(work, 'other.key');
    await fs.writeFile(other, randomBytes(32).toString('hex'));
    const wrong = await rf(['info', ...repoFlags, '--repo-key-file', other], { env: S3_ENV });
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toMatch(/RF_REPO_KEY.*does not open the archive/);
  });
});

describe('rf verify --repo', () => {
  it('passes a whole bucket, then names a flipped byte, a deleted object and one copied in; a restore across them refuses', async () => {
    const verify = () =>
      rf(['verify', ...repoFlags, '--repo-key-file', keyFile, '--json'], {
        env: S3_ENV,
        timeoutMs: 60_000,
      });
    const clean = await verify();
    expect(clean.code, clean.stderr + clean.stdout).toBe(0);
    expect(JSON.parse(clean.stdout)).toMatchObject({ clean: true, bucket: [] });

    // s3rver keeps each object's bytes in `<key>._S3rver_object`.
    const objects = (await fs.readdir(s3.dir, { recursive: true }))
      .map(String)
      .filter((f) => f.endsWith('._S3rver_object') && f.includes('/seg/'))
      .sort();
    expect(objects.length).toBeGreaterThanOrEqual(3);
    const keyOf = (f: string) => f.slice(f.indexOf('default/'), -'._S3rver_object'.length);
    const flipped = objects[0]!;
    const deleted = objects[objects.length - 1]!;
    const file = path.join(s3.dir, flipped);
    const bytes = await fs.readFile(file);
    bytes[Math.floor(bytes.length / 2)]! ^= 0xff;
    await fs.writeFile(file, bytes);
    for (const suffix of ['._S3rver_object', '._S3rver_object.md5', '._S3rver_metadata.json']) {
      await fs.rm(path.join(s3.dir, deleted.replace('._S3rver_object', suffix)), { force: true });
    }
    const strayDir = path.join(path.dirname(path.join(s3.dir, objects[1]!)), '..', '0000ffff');
    await fs.mkdir(strayDir, { recursive: true });
    for (const suffix of ['._S3rver_object', '._S3rver_object.md5', '._S3rver_metadata.json']) {
      await fs.copyFile(
        path.join(s3.dir, objects[1]!.replace('._S3rver_object', suffix)),
        path.join(strayDir, `0000000000000001-0000000000000002${suffix}`),
      );
    }

    const found = await verify();
    expect(found.code, found.stderr + found.stdout).toBe(1);
    const report = JSON.parse(found.stdout) as {
      clean: boolean;
      bucket: { kind: string; object: string }[];
    };
    expect(report.clean).toBe(false);
    expect(report.bucket).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ kind: 'damaged', object: keyOf(flipped) }),
        expect.objectContaining({ kind: 'missing', object: keyOf(deleted) }),
        expect.objectContaining({
          kind: 'extra',
          object: 'default/seg/0000ffff/0000000000000001-0000000000000002',
        }),
      ]),
    );

    const restore = await rf(
      [
        'restore',
        ...repoFlags,
        '--repo-key-file',
        keyFile,
        '--until',
        checkpoints[checkpoints.length - 1]!.at,
        '--dry-run',
      ],
      { env: S3_ENV, timeoutMs: 60_000 },
    );
    expect(restore.code, restore.stderr).toBe(4);
    expect(restore.stderr).toMatch(/RF_CHECKSUM|RF_CORRUPT/);
  });
});
