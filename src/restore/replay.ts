import { RfError } from '../errors.js';
import { encodeCommand } from '../resp/encode.js';
import type { Archive } from '../store/archive.js';
import { forEachEntry } from '../store/codec.js';
import {
  CommandState,
  commandName,
  frameKind,
  frameKindAt,
  Kind,
  parseArgs,
} from '../store/commands.js';
import type { Entry, SegmentMeta } from '../store/types.js';
import { absoluteExpiry } from './expiry.js';
import type { RestorePlan } from './plan.js';

export interface ReplayStats {
  /** Commands written, SELECT and MULTI/EXEC included. */
  commands: number;
  /** Data-changing commands written. */
  writes: number;
  bytes: number;
  segments: number;
  /** The end of the last segment read: progress, for a progress bar. */
  offset: number;
  last: { offset: number; time: number; command: string } | null;
}

/**
 * The commands to replay on top of the plan's base, in order, as RESP bytes batched per segment:
 * a SELECT for the db in effect at the base's offset (an AOF load starts in db 0), then every
 * entry after the base up to the cut. Each segment is checked against its checksum as it is read.
 */
export async function* replayFrames(
  archive: Archive,
  plan: RestorePlan,
  stats: ReplayStats,
  /** The timeline's master propagated relative expiries (Redis 6): see expiry.ts. */
  options: { relativeExpiries?: boolean } = {},
): AsyncIterable<Buffer> {
  const relative = options.relativeExpiries === true;
  const { source, timeline, fromOffset, cut } = plan;
  let state: CommandState | null = null;
  // Segments of a timeline join up; a hole means a lost segment, and replaying past it would
  // quietly give a dataset that never existed.
  let expected: number | null = null;
  // A base is never taken inside a transaction: replay starts outside one.
  let inMulti = false;
  let lastWhole: SegmentMeta | null = null;
  for await (const meta of archive.segments(source, timeline.id, fromOffset)) {
    if (meta.start > cut.offset) break;
    if (
      (expected !== null && meta.start !== expected) ||
      (expected === null && meta.start > fromOffset)
    ) {
      throw new RfError(
        'RF_CORRUPT',
        `the archive of ${source} misses stream offsets ${expected ?? fromOffset}..${meta.start - 1} in timeline ${timeline.id}`,
        {
          details: {
            source,
            timeline: timeline.id,
            missingFrom: expected ?? fromOffset,
            missingTo: meta.start - 1,
          },
          hint: 'run `rf verify` to list every damaged part of the archive',
        },
      );
    }
    expected = meta.end + 1;
    // A segment wholly inside the replay with nothing to skip is copied as it is, undecoded.
    if (
      stats.commands > 0 &&
      !relative &&
      meta.chatter === 0 &&
      meta.start >= fromOffset &&
      meta.end <= cut.offset
    ) {
      const payload = await archive.readSegmentPayload(source, meta);
      stats.segments++;
      stats.commands += meta.count;
      stats.writes += meta.writes;
      if (meta.writes > 0) lastWhole = meta;
      stats.offset = meta.end;
      stats.bytes += payload.length;
      yield payload;
      if (meta.end >= cut.offset) break;
      continue;
    }
    // Walked in place: an object and a view per entry cost more than the rest of the replay.
    const { data, where } = await archive.segmentData(source, meta);
    // The transaction state at the segment's start is recorded with it.
    inMulti = meta.multiAt !== null;
    stats.segments++;
    state ??= new CommandState(meta.db, meta.multiAt);
    const out: Buffer[] = [];
    const first = stats.commands === 0;
    let done = false;
    // Entries lie back to back in the segment value: replay runs of them as single slices.
    let runAt = -1;
    let runLength = 0;
    // The last write the segment applies, named once the walk is done.
    let lastAt = -1;
    let lastLength = 0;
    let lastOffset = 0;
    let lastTime = 0;
    let lastKind = Kind.write as Kind;
    const endRun = () => {
      if (runAt >= 0) out.push(data.subarray(runAt, runAt + runLength));
      runAt = -1;
      runLength = 0;
    };
    forEachEntry(data, meta, where, (offset, time, pos, length) => {
      if (offset < fromOffset) {
        // Track SELECTs before the base's offset: the db the stream is in when the base was taken.
        if (first) {
          const frame = () => parseArgs(data.subarray(pos, pos + length));
          state!.applyKind(frameKindAt(data, pos), frame, offset);
        }
        return undefined;
      }
      if (stats.commands === 0) {
        out.push(encodeCommand(['SELECT', String(state!.db)]));
        stats.commands++;
      }
      if (offset + length - 1 > cut.offset) {
        done = true;
        return false;
      }
      const kind = frameKindAt(data, pos);
      if (kind === Kind.chatter || kind === Kind.publish) {
        endRun();
        return undefined;
      }
      const absolute =
        relative && kind === Kind.write
          ? absoluteExpiry(data.subarray(pos, pos + length), time)
          : null;
      if (absolute !== null) {
        endRun();
        out.push(absolute);
      } else {
        if (runAt < 0) runAt = pos;
        runLength += length;
      }
      stats.commands++;
      if (kind === Kind.write) stats.writes++;
      // A transaction's writes are applied at its EXEC: that is the last write applied.
      if (kind === Kind.exec || (kind === Kind.write && !inMulti)) {
        lastAt = pos;
        lastLength = length;
        lastOffset = offset;
        lastTime = time;
        lastKind = kind;
      }
      if (kind === Kind.multi) inMulti = true;
      else if (kind === Kind.exec) inMulti = false;
      return undefined;
    });
    if (stats.commands === 0) {
      out.push(encodeCommand(['SELECT', String(state.db)]));
      stats.commands++;
    }
    endRun();
    stats.offset = Math.min(meta.end, cut.offset);
    if (lastAt >= 0) {
      lastWhole = null;
      stats.last = {
        offset: lastOffset,
        time: lastTime,
        command:
          lastKind === Kind.exec ? 'exec' : commandName(data.subarray(lastAt, lastAt + lastLength)),
      };
    }
    for (const buf of out) {
      stats.bytes += buf.length;
      yield buf;
    }
    if (done || meta.end >= cut.offset) break;
  }
  if (lastWhole !== null) stats.last = await lastWrite(archive, source, lastWhole);
  if (expected !== null && expected <= cut.offset) {
    throw new RfError(
      'RF_CORRUPT',
      `the archive of ${source} ends at offset ${expected - 1} in timeline ${timeline.id}, before the cut at ${cut.offset}`,
      {
        details: { source, timeline: timeline.id, missingFrom: expected, missingTo: cut.offset },
        hint: 'run `rf verify` to list every damaged part of the archive',
      },
    );
  }
  if (stats.commands === 0) {
    // Nothing after the base: still select db 0 so the incr file is a valid, non-empty AOF.
    const buf = encodeCommand(['SELECT', '0']);
    stats.commands++;
    stats.bytes += buf.length;
    yield buf;
  }
}

/** The last write applied in a segment replayed whole: decoded once, at the end. */
async function lastWrite(
  archive: Archive,
  source: string,
  meta: SegmentMeta,
): Promise<ReplayStats['last']> {
  const { entries } = await archive.readSegment(source, meta);
  let inMulti = meta.multiAt !== null;
  let found: { entry: Entry; kind: Kind } | null = null;
  for (const e of entries) {
    const kind = frameKind(e.bytes);
    if (kind === Kind.exec || (kind === Kind.write && !inMulti)) found = { entry: e, kind };
    if (kind === Kind.multi) inMulti = true;
    else if (kind === Kind.exec) inMulti = false;
  }
  if (found === null) return null;
  const { entry, kind } = found;
  return {
    offset: entry.offset,
    time: entry.time,
    command: kind === Kind.exec ? 'exec' : commandName(entry.bytes),
  };
}

export function emptyStats(): ReplayStats {
  return { commands: 0, writes: 0, bytes: 0, segments: 0, offset: 0, last: null };
}
