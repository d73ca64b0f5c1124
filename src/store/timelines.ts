import { promises as fs } from 'node:fs';
import path from 'node:path';
import { keys } from './keys.js';
import { json, type Store, storePaths } from './store.js';
import type {
  BaseMeta,
  DurableState,
  RolledFrom,
  SourceRecord,
  Timeline,
  TimelineFork,
  TimelineReason,
} from './types.js';

export interface SnapshotFile {
  /** A complete, fsynced RDB in the store's tmp directory. */
  tmpFile: string;
  replid: string;
  offset: number;
  takenAt: number;
  bytes: number;
  sha256: string;
  rdbVersion: number;
  transfer: BaseMeta['transfer'];
  /** The writes of the previous timeline the new master lacks, when it lacks any. */
  fork?: TimelineFork;
}

/** Where a base file lives, relative to the store directory. */
export function baseFileName(src: string, timeline: number, offset: number): string {
  return path.join('bases', src, `${timeline.toString().padStart(6, '0')}-${offset}.rdb`);
}

async function installBase(
  store: Store,
  src: string,
  timeline: number,
  snap: SnapshotFile,
): Promise<string> {
  const rel = baseFileName(src, timeline, snap.offset);
  const dest = path.join(store.dir, rel);
  await fs.mkdir(path.dirname(dest), { recursive: true, mode: 0o700 });
  await fs.rename(snap.tmpFile, dest);
  // The rename must reach the disk before the record that points at the file does.
  const dir = await fs.open(path.dirname(dest), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
  return rel;
}

function baseMeta(
  timeline: number,
  rel: string,
  snap: SnapshotFile,
  via: BaseMeta['via'],
): BaseMeta {
  return {
    timeline,
    offset: snap.offset,
    replid: snap.replid,
    file: rel,
    bytes: snap.bytes,
    sha256: snap.sha256,
    rdbVersion: snap.rdbVersion,
    takenAt: snap.takenAt,
    completedAt: Date.now(),
    via,
    transfer: snap.transfer,
  };
}

/** Why a full resync could not continue the previous timeline. */
export function timelineReason(previous: DurableState | undefined, replid: string): TimelineReason {
  if (previous === undefined) return 'initial';
  return previous.replid === replid ? 'offset-not-in-backlog' : 'replid-changed';
}

/**
 * Starts a timeline from a full resync: the base file, the timeline, the source record and the
 * resume state are committed together, so a crash leaves either all of them or none.
 */
export async function beginTimeline(
  store: Store,
  source: SourceRecord,
  previous: DurableState | undefined,
  snap: SnapshotFile,
): Promise<{ timeline: Timeline; state: DurableState }> {
  const id = previous === undefined ? 1 : previous.timeline + 1;
  const rel = await installBase(store, source.name, id, snap);
  const timeline: Timeline = {
    id,
    replid: snap.replid,
    replids: [{ replid: snap.replid, from: snap.offset + 1 }],
    baseOffset: snap.offset,
    startedAt: snap.takenAt,
    reason: timelineReason(previous, snap.replid),
    durableOffset: snap.offset,
    lastTime: snap.takenAt,
    segments: 0,
    bytes: 0,
    ...(snap.fork === undefined ? {} : { fork: snap.fork }),
  };
  // After a full sync the master re-sends SELECT before its first command
  // (replicationSetupSlaveForFullResync sets server.slaveseldb = -1); 0 stands until then.
  const state: DurableState = {
    timeline: id,
    replid: snap.replid,
    durableOffset: snap.offset,
    db: 0,
    multiAt: null,
    lastTime: snap.takenAt,
  };
  const src = source.name;
  await store.batch([
    { type: 'put', key: keys.source(src), value: json.encode(source) },
    { type: 'put', key: keys.timeline(src, id), value: json.encode(timeline) },
    {
      type: 'put',
      key: keys.base(src, id, snap.offset),
      value: json.encode(baseMeta(id, rel, snap, 'full-sync')),
    },
    { type: 'put', key: keys.state(src), value: json.encode(state) },
  ]);
  return { timeline, state };
}

/**
 * Adds a base inside a running timeline: a fresh one (taken over a second, rdb-only
 * connection), or, with `rolled`, one rf built itself from an older base and the stream.
 */
export async function addBase(
  store: Store,
  src: string,
  timeline: number,
  snap: SnapshotFile,
  rolled?: RolledFrom,
): Promise<BaseMeta> {
  const rel = await installBase(store, src, timeline, snap);
  const meta =
    rolled === undefined
      ? baseMeta(timeline, rel, snap, 'rdb-only')
      : { ...baseMeta(timeline, rel, snap, 'rolled'), rolled };
  await store.batch([
    { type: 'put', key: keys.base(src, timeline, snap.offset), value: json.encode(meta) },
  ]);
  return meta;
}

/** Files made in the same millisecond by one process (a cluster's shards sync at once) differ by it. */
let tmpSeq = 0;

export function tmpFile(store: Store, what: string): string {
  tmpSeq++;
  return path.join(storePaths(store.dir).tmp, `${what}-${process.pid}-${Date.now()}-${tmpSeq}.tmp`);
}
