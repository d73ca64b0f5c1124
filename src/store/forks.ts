import type { Archive } from './archive.js';
import { frameKind, Kind } from './commands.js';
import type { DurableState, TimelineFork } from './types.js';

/**
 * What a new master's `INFO replication` says it holds of the timeline rf followed: after a
 * failover the promoted replica keeps the old replid as `master_replid2` and holds its offsets
 * below `second_repl_offset` (replication.c shiftReplicationId).
 */
export interface PromotedMaster {
  master: string;
  replid2: string;
  secondReplOffset: number;
}

/**
 * The fork a full resync from `promoted` leaves, or null: rf holds offsets of the old replid from
 * `second_repl_offset` up to its durable offset that the new master never had. A master whose
 * replid2 is not the one rf followed says nothing about it (a restarted master, a second failover).
 */
export async function forkOf(
  archive: Archive,
  source: string,
  previous: DurableState,
  promoted: PromotedMaster,
): Promise<TimelineFork | null> {
  const { secondReplOffset: fromOffset } = promoted;
  if (promoted.replid2 !== previous.replid || fromOffset > previous.durableOffset) return null;
  let from: number | null = null;
  let writes = 0;
  for await (const meta of archive.segments(source, previous.timeline, fromOffset)) {
    if (meta.start > previous.durableOffset) break;
    for (const entry of (await archive.readSegment(source, meta)).entries) {
      if (entry.offset < fromOffset || entry.offset > previous.durableOffset) continue;
      from ??= entry.time;
      if (frameKind(entry.bytes) === Kind.write) writes++;
    }
  }
  return {
    timeline: previous.timeline,
    replid: previous.replid,
    fromOffset,
    untilOffset: previous.durableOffset,
    from: from ?? previous.lastTime,
    until: previous.lastTime,
    writes,
    master: promoted.master,
  };
}
