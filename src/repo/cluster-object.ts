/**
 * A cluster's own record in the bucket (README, "Object storage"). Each shard is a source with
 * its own `<cluster>.<id>/` folder and manifests; beside them, under the cluster's name:
 *
 *   <cluster>/cluster/<seq>     the cluster record (shards, the nodes seen in each, slot owners
 *                               over time) as of one moment, and each shard's manifest then
 *
 * Written after the shard manifests it names, and only then read: the record is taken from the
 * store after those manifests are in the bucket, so every write they hold is covered by the slot
 * changes it records. A shard's manifest written later may hold writes past `knownUntil`, of
 * slots whose owners the record does not know yet: a restore from the bucket stops there.
 */
import { RfError } from '../errors.js';
import type { ClusterRecord } from '../store/cluster.js';
import { hex } from '../store/keys.js';
import type { RepoClient } from './client.js';
import { numbered } from './manifests.js';

export const CLUSTER_FORMAT = 1;

export interface ClusterObject {
  format: typeof CLUSTER_FORMAT;
  name: string;
  seq: number;
  writtenAt: number;
  /** The record was read from the store at this moment: slot owners are known up to it. */
  knownUntil: number;
  record: ClusterRecord;
  /** The newest manifest of each shard in the bucket when the record was read (0: none yet). */
  shards: Array<{ source: string; manifestSeq: number }>;
}

export const clusterNames = {
  prefix: (cluster: string) => `${cluster}/cluster/`,
  object: (cluster: string, seq: number) => `${cluster}/cluster/${hex(seq, 16)}`,
};

function seqOf(name: string): number | undefined {
  const m = /\/cluster\/([0-9a-f]{16})$/.exec(name);
  return m === null ? undefined : Number.parseInt(m[1]!, 16);
}

/** The cluster objects of `cluster` in the bucket, oldest first. */
export function clusterObjectNames(
  client: RepoClient,
  cluster: string,
): Promise<{ name: string; seq: number }[]> {
  return numbered(client, clusterNames.prefix(cluster), seqOf);
}

export function parseClusterObject(content: Buffer, name: string): ClusterObject {
  let c: ClusterObject;
  try {
    c = JSON.parse(content.toString('utf8')) as ClusterObject;
  } catch (err) {
    throw new RfError(
      'RF_CORRUPT',
      `the bucket object ${name} is not a cluster record rf can read`,
      {
        details: { object: name },
        hint: 'run `rf verify --repo …`',
        cause: err,
      },
    );
  }
  if (c.format !== CLUSTER_FORMAT) {
    throw new RfError(
      'RF_CORRUPT',
      `the cluster record ${name} has format ${String(c.format)}, not ${CLUSTER_FORMAT}`,
      {
        details: { object: name, format: c.format },
        hint: 'read it with the rf version that wrote it',
      },
    );
  }
  return c;
}

/** The newest cluster object of `cluster`, or undefined when the bucket holds none. */
export async function latestClusterObject(
  client: RepoClient,
  cluster: string,
): Promise<ClusterObject | undefined> {
  const newest = (await clusterObjectNames(client, cluster)).at(-1);
  if (newest === undefined) return undefined;
  const content = await client.get(newest.name, true);
  return content === undefined ? undefined : parseClusterObject(content, newest.name);
}

/** The record as a reader of the bucket takes it: its restorable range ends at `knownUntil`. */
export function recordFromBucket(c: ClusterObject): ClusterRecord {
  return { ...c.record, knownUntil: c.knownUntil };
}
