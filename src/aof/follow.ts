/**
 * What the capture loop shares with the layout followers (follow-manifest.ts for Redis 7,
 * follow-single.ts for Redis 6): the files and bases found, what the receiver already holds,
 * and rf's file numbering. The followers add to it; the loop (capture.ts) drains it.
 */
import { promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../logger.js';
import type { AofFileRecord, AofGap } from '../store/chunks.js';
import type { AofSink, HeldState } from './sink.js';
import type { PendingBase, Tracked } from './tracked.js';

export interface FollowState {
  /** Files being followed, in fileNo order; the last is the one Redis writes to. */
  files: Tracked[];
  pendingBases: PendingBase[];
  /** Files and bases already dealt with in this run, by kind, name, seq and inode → fileNo. */
  seen: Map<string, number>;
  held: HeldState;
  /** rf's next file number, taken by files, bases and missed files alike, never reused. */
  nextFileNo: number;
}

export interface FollowHost {
  readonly state: FollowState;
  readonly sink: AofSink;
  readonly log: Logger;
  /** Re-opens a file the receiver holds, checking it still has the bytes stored for it. */
  resume(record: AofFileRecord, p: string, fh: FileHandle): Promise<Tracked>;
  /** Stores a gap and tells the capture's listeners. */
  recordGap(gap: AofGap): Promise<void>;
  /** Warns once until `clearWarning(key)`. */
  warnOnce(key: string, details: Record<string, unknown>, message: string): void;
  clearWarning(key: string): void;
}

/**
 * Files the sink holds unfinished that the current layout no longer lists (history Redis
 * deleted while the capture was not running). One still on disk is finished; a missing one
 * leaves a gap, recorded, from where the sink's copy ends.
 */
export async function adoptLeftovers(
  host: FollowHost,
  dir: string,
  onEnded: (record: AofFileRecord) => void,
): Promise<void> {
  const tracked = new Set(host.state.files.map((f) => f.record.fileNo));
  const leftovers = host.state.held.files
    .filter((r) => r.ended === null && !tracked.has(r.fileNo))
    .sort((a, b) => a.fileNo - b.fileNo);
  const adopted: Tracked[] = [];
  for (const record of leftovers) {
    const p = path.join(dir, record.name);
    const fh = await fs.open(p, 'r').catch(() => null);
    const ino = fh === null ? null : (await fh.stat()).ino;
    if (fh !== null && ino === record.ino) {
      const f = await host.resume(record, p, fh);
      f.done = true;
      adopted.push(f);
      continue;
    }
    await fh?.close();
    const gap: AofGap = {
      fileNo: record.fileNo,
      file: record.name,
      start: record.capturedEnd,
      end: null,
      at: Date.now(),
      reason: 'file-deleted',
    };
    host.log.warn(
      { file: record.name, fileNo: record.fileNo, capturedEnd: record.capturedEnd },
      'an AOF file the store holds unfinished is gone from the Redis host: recording a gap',
    );
    await host.recordGap(gap);
    const ended = await host.sink.putFile({
      ...record,
      ended: { at: Date.now(), size: record.capturedEnd },
    });
    onEnded(ended);
  }
  host.state.files = [...adopted, ...host.state.files];
}
