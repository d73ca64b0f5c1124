import type { Logger } from '../logger.js';
import type { ClusterRecord } from '../store/cluster.js';
import type { RepoClient } from './client.js';
import {
  CLUSTER_FORMAT,
  type ClusterObject,
  clusterNames,
  clusterObjectNames,
  latestClusterObject,
} from './cluster-object.js';

export interface ClusterUploaderOptions {
  client: RepoClient;
  name: string;
  log: Logger;
  /** The cluster record as the store holds it now. */
  record: () => ClusterRecord | undefined;
  /** Each shard's newest manifest in the bucket, as its uploader last wrote or read it. */
  shards: () => ClusterObject['shards'];
}

/** One cluster object to write: its seq, what it says (key), and its bytes. */
interface ClusterWrite {
  seq: number;
  key: string;
  shards: ClusterObject['shards'];
  content: Buffer;
}

/**
 * Writes the cluster's own object (cluster-object.ts) whenever the record or a shard's manifest
 * has changed since the last one: the shard manifests first (their uploaders), then the record
 * that covers them. Each object is written once under the next seq; one whose write failed is
 * written again with the same bytes (a no-op if the first write landed) before anything new.
 */
export class ClusterUploader {
  private last: Omit<ClusterWrite, 'content'> | null = null;
  private unconfirmed: ClusterWrite | null = null;

  constructor(private readonly options: ClusterUploaderOptions) {}

  /** Writes a new cluster object if anything changed; true when one was written. */
  async publish(): Promise<boolean> {
    const { client, name } = this.options;
    if (this.last === null) {
      const newest = await latestClusterObject(client, name);
      this.last = {
        seq: newest?.seq ?? 0,
        key: newest === undefined ? '' : keyOf(newest.record, newest.shards),
        shards: newest?.shards ?? [],
      };
    }
    if (this.unconfirmed !== null) await this.write(this.unconfirmed);
    // The shards' manifests before the record: every write they name is covered by it. A shard
    // whose uploader has not read its manifest yet (just started) keeps the seq last written.
    const before = new Map(this.last.shards.map((s) => [s.source, s.manifestSeq]));
    const shards = this.options.shards().map((s) => ({
      source: s.source,
      manifestSeq: Math.max(s.manifestSeq, before.get(s.source) ?? 0),
    }));
    const knownUntil = Date.now();
    const record = this.options.record();
    if (record === undefined) return false;
    const key = keyOf(record, shards);
    if (key === this.last.key) return false;
    const seq = this.last.seq + 1;
    const object: ClusterObject = {
      format: CLUSTER_FORMAT,
      name,
      seq,
      writtenAt: Date.now(),
      knownUntil,
      record,
      shards,
    };
    await this.write({ seq, key, shards, content: Buffer.from(JSON.stringify(object)) });
    return true;
  }

  private async write(w: ClusterWrite): Promise<void> {
    const { client, name } = this.options;
    this.unconfirmed = w;
    await client.put(clusterNames.object(name, w.seq), w.content);
    this.unconfirmed = null;
    this.last = { seq: w.seq, key: w.key, shards: w.shards };
    // The newest two stay: a reader that just listed the one before still finds it.
    const old = (await clusterObjectNames(client, name)).filter((o) => o.seq < w.seq - 1);
    if (old.length > 0) await client.delete(old.map((o) => o.name));
  }
}

function keyOf(record: ClusterRecord, shards: ClusterObject['shards']): string {
  return JSON.stringify({ record, shards });
}
