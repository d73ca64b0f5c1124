import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/logger.js';
import { RepoClient } from '../../src/repo/client.js';
import {
  clusterObjectNames,
  latestClusterObject,
  recordFromBucket,
} from '../../src/repo/cluster-object.js';
import { ClusterUploader } from '../../src/repo/cluster-uploader.js';
import { parseRepoUrl } from '../../src/repo/url.js';
import { type ClusterRecord, clusterRestorable } from '../../src/store/cluster.js';
import { S3_ENV, type S3Server, startFlakyFront, startS3 } from '../helpers/s3.js';

/**
 * The cluster's own object in a real S3-compatible server: written only when the record or a
 * shard's manifest changed, once under each seq, the same bytes again after a lost reply, the
 * newest two kept; read back, its restorable range ends where the record knew the slot owners.
 */

Object.assign(process.env, S3_ENV);

let s3: S3Server;
beforeAll(async () => {
  s3 = await startS3();
});
afterAll(async () => {
  await s3?.stop();
});

const client = (prefix: string, endpoint = s3.endpoint) =>
  new RepoClient({
    location: parseRepoUrl(`s3://${s3.bucket}/${prefix}`),
    endpoint,
    pathStyle: true,
    requestTimeoutMs: 3_000,
  });

const record = (owners: ClusterRecord['slots']): ClusterRecord => ({
  name: 'c',
  createdAt: 1,
  url: 'redis://127.0.0.1:7000',
  shards: [
    { id: 'a', source: 'c.a', nodeIds: ['a'], master: '127.0.0.1:7000' },
    { id: 'b', source: 'c.b', nodeIds: ['b'], master: '127.0.0.1:7001' },
  ],
  slots: owners,
});

const halves = { a: [[0, 8191]] as [number, number][], b: [[8192, 16383]] as [number, number][] };

describe('the cluster object in the bucket', () => {
  it('is written when something changed, once under each seq; the newest two stay', async () => {
    const c = client('publish');
    let rec = record([{ at: 100, owners: halves }]);
    let seqs = [
      { source: 'c.a', manifestSeq: 1 },
      { source: 'c.b', manifestSeq: 1 },
    ];
    const up = new ClusterUploader({
      client: c,
      name: 'c',
      log: silentLogger(),
      record: () => rec,
      shards: () => seqs,
    });
    expect(await up.publish()).toBe(true);
    // Nothing changed: nothing written.
    expect(await up.publish()).toBe(false);
    expect((await clusterObjectNames(c, 'c')).map((o) => o.seq)).toEqual([1]);
    seqs = [
      { source: 'c.a', manifestSeq: 2 },
      { source: 'c.b', manifestSeq: 1 },
    ];
    expect(await up.publish()).toBe(true);
    rec = record([
      { at: 100, owners: halves },
      { at: 200, owners: { a: [[0, 16383]] } },
    ]);
    expect(await up.publish()).toBe(true);
    expect((await clusterObjectNames(c, 'c')).map((o) => o.seq)).toEqual([2, 3]);
    const newest = await latestClusterObject(c, 'c');
    expect(newest?.seq).toBe(3);
    expect(newest?.record).toEqual(rec);
    expect(newest?.shards).toEqual([
      { source: 'c.a', manifestSeq: 2 },
      { source: 'c.b', manifestSeq: 1 },
    ]);

    // Started again: it reads the newest, and writes nothing while nothing changed. A shard
    // whose uploader has not read its manifest yet (seq 0) keeps the seq the bucket names.
    seqs = [
      { source: 'c.a', manifestSeq: 0 },
      { source: 'c.b', manifestSeq: 1 },
    ];
    const again = new ClusterUploader({
      client: c,
      name: 'c',
      log: silentLogger(),
      record: () => rec,
      shards: () => seqs,
    });
    expect(await again.publish()).toBe(false);
    expect((await clusterObjectNames(c, 'c')).map((o) => o.seq)).toEqual([2, 3]);
    c.close();
  });

  it('after a lost reply writes the same bytes under the same seq, never new content there', async () => {
    const front = await startFlakyFront(s3.port);
    const c = client('lost', front.endpoint);
    let seqs = [{ source: 'c.a', manifestSeq: 1 }];
    const up = new ClusterUploader({
      client: c,
      name: 'c',
      log: silentLogger(),
      record: () => record([{ at: 100, owners: halves }]),
      shards: () => seqs,
    });
    try {
      // Both attempts the client makes: stored by the server, unanswered.
      front.loseReplies(/\/cluster\//, 2);
      await expect(up.publish()).rejects.toThrow();
      expect(front.lost).toBe(2);
      // Something changed meanwhile: the unconfirmed object goes first, as it was, then the new.
      seqs = [{ source: 'c.a', manifestSeq: 2 }];
      expect(await up.publish()).toBe(true);
      const objects = await clusterObjectNames(c, 'c');
      expect(objects.map((o) => o.seq)).toEqual([1, 2]);
      expect((await latestClusterObject(c, 'c'))?.shards).toEqual(seqs);
    } finally {
      c.close();
      await front.close();
    }
  });

  it('read back, ends the cluster’s restorable range at knownUntil', async () => {
    const c = client('read');
    const up = new ClusterUploader({
      client: c,
      name: 'c',
      log: silentLogger(),
      record: () => record([{ at: 100, owners: halves }]),
      shards: () => [],
    });
    const before = Date.now();
    await up.publish();
    const object = (await latestClusterObject(c, 'c'))!;
    expect(object.knownUntil).toBeGreaterThanOrEqual(before);
    const far = object.knownUntil + 60_000;
    const ranges = new Map([
      ['a', [{ from: 100, until: far }]],
      ['b', [{ from: 100, until: far }]],
    ]);
    expect(clusterRestorable(recordFromBucket(object), ranges)).toEqual([
      { from: 100, until: object.knownUntil },
    ]);
    expect(clusterRestorable(object.record, ranges)).toEqual([{ from: 100, until: far }]);
    c.close();
  });
});
