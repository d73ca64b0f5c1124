import { RfError } from '../errors.js';
import { encodeCommand } from '../resp/encode.js';
import type { Archive } from '../store/archive.js';
import { CommandState, commandName, isWrite, nameOf, parseArgs } from '../store/commands.js';
import type { RestorePlan } from './plan.js';

/** Stream entries that are not data and that an AOF never holds (src/aof.c feeds none of them). */
const NOT_REPLAYED = new Set(['ping', 'replconf', 'publish', 'spublish']);

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
): AsyncIterable<Buffer> {
  const { source, timeline, fromOffset, cut } = plan;
  let state: CommandState | null = null;
  // Segments of a timeline join up; a hole means a lost segment, and replaying past it would
  // quietly give a dataset that never existed.
  let expected: number | null = null;
  // A base is never taken inside a transaction: replay starts outside one.
  let inMulti = false;
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
    const { entries } = await archive.readSegment(source, meta);
    stats.segments++;
    state ??= new CommandState(meta.db, meta.multiAt);
    const out: Buffer[] = [];
    if (stats.commands === 0) {
      // Track SELECTs before the base's offset: the db the stream is in when the base was taken.
      for (const e of entries) {
        if (e.offset >= fromOffset) break;
        const args = parseArgs(e.bytes);
        state.apply(nameOf(args[0]), args, e.offset);
      }
      out.push(encodeCommand(['SELECT', String(state.db)]));
      stats.commands++;
    }
    let done = false;
    for (const e of entries) {
      if (e.offset < fromOffset) continue;
      if (e.offset + e.bytes.length - 1 > cut.offset) {
        done = true;
        break;
      }
      const name = commandName(e.bytes);
      if (NOT_REPLAYED.has(name)) continue;
      out.push(e.bytes);
      stats.commands++;
      if (isWrite(name)) stats.writes++;
      // A transaction's writes are applied at its EXEC: that is the last write applied.
      if (name === 'exec' || (isWrite(name) && !inMulti))
        stats.last = { offset: e.offset, time: e.time, command: name };
      if (name === 'multi') inMulti = true;
      else if (name === 'exec') inMulti = false;
    }
    stats.offset = Math.min(meta.end, cut.offset);
    if (out.length > 0) {
      const buf = Buffer.concat(out);
      stats.bytes += buf.length;
      yield buf;
    }
    if (done || meta.end >= cut.offset) break;
  }
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

export function emptyStats(): ReplayStats {
  return { commands: 0, writes: 0, bytes: 0, segments: 0, offset: 0, last: null };
}
