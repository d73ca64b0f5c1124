import { RfError } from '../errors.js';
import { encodeCommand } from '../resp/encode.js';
import type { Archive } from '../store/archive.js';
import { CommandState, commandName, frameKind, Kind, parseArgs } from '../store/commands.js';
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
  let last: { entry: Entry; kind: Kind } | null = null;
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
    const { entries } = await archive.readSegment(source, meta);
    // The transaction state at the segment's start is recorded with it.
    inMulti = meta.multiAt !== null;
    stats.segments++;
    state ??= new CommandState(meta.db, meta.multiAt);
    const out: Buffer[] = [];
    if (stats.commands === 0) {
      // Track SELECTs before the base's offset: the db the stream is in when the base was taken.
      for (const e of entries) {
        if (e.offset >= fromOffset) break;
        state.applyKind(frameKind(e.bytes), () => parseArgs(e.bytes), e.offset);
      }
      out.push(encodeCommand(['SELECT', String(state.db)]));
      stats.commands++;
    }
    let done = false;
    // Entries are consecutive views of one segment value: replay runs of them as single slices.
    let run: Buffer | null = null;
    let runLength = 0;
    const endRun = () => {
      if (run !== null) out.push(Buffer.from(run.buffer, run.byteOffset, runLength));
      run = null;
      runLength = 0;
    };
    for (const e of entries) {
      if (e.offset < fromOffset) continue;
      if (e.offset + e.bytes.length - 1 > cut.offset) {
        done = true;
        break;
      }
      const kind = frameKind(e.bytes);
      if (kind === Kind.chatter || kind === Kind.publish) {
        endRun();
        continue;
      }
      const absolute = relative && kind === Kind.write ? absoluteExpiry(e.bytes, e.time) : null;
      if (absolute !== null) {
        endRun();
        out.push(absolute);
      } else {
        if (run === null) run = e.bytes;
        runLength += e.bytes.length;
      }
      stats.commands++;
      if (kind === Kind.write) stats.writes++;
      // A transaction's writes are applied at its EXEC: that is the last write applied.
      if (kind === Kind.exec || (kind === Kind.write && !inMulti)) last = { entry: e, kind };
      if (kind === Kind.multi) inMulti = true;
      else if (kind === Kind.exec) inMulti = false;
    }
    endRun();
    stats.offset = Math.min(meta.end, cut.offset);
    if (last !== null) {
      lastWhole = null;
      const { entry, kind } = last;
      stats.last = {
        offset: entry.offset,
        time: entry.time,
        command: kind === Kind.exec ? 'exec' : commandName(entry.bytes),
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
