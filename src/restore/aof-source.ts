import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { RfError } from '../errors.js';
import { FrameScanner } from '../resp/frames.js';
import {
  AofArchive,
  type AofBaseMeta,
  type AofChunkMeta,
  type AofFileRecord,
} from '../store/chunks.js';
import { CommandState, Kind, kindOf, nameOf } from '../store/commands.js';
import type { KvReader } from '../store/store.js';
import { isoUtc } from '../time.js';
import type { DroppedTransaction } from './plan.js';
import type { ReplayStats } from './replay.js';

/**
 * Restore from the second record, the AOF chunks. Times come from the `#TS:<unix seconds>`
 * annotations Redis writes with aof-timestamp-enabled (second precision, the rule of
 * `redis-check-aof --truncate-to-timestamp`: a command belongs to the second of the last
 * annotation before it), or, without them, from the time each chunk was cut (chunk precision).
 */
export type AofPrecision = 'second' | 'chunk';

export interface AofPlan {
  source: string;
  target: number;
  base: AofBaseMeta;
  /** The files replayed on top of the base, in order. */
  files: AofFileRecord[];
  precision: AofPrecision;
  /** When the base stands for: the first command after it is no earlier. */
  baseTime: number;
}

interface Timed {
  base: AofBaseMeta;
  files: AofFileRecord[];
  from: number;
  firstChunk: AofChunkMeta | undefined;
}

async function firstChunk(
  archive: AofArchive,
  src: string,
  fileNo: number,
): Promise<AofChunkMeta | undefined> {
  for await (const c of archive.chunks(src, fileNo)) return c;
  return undefined;
}

/** The time of a chunk's commands: its first annotation, else the moment it was cut. */
function chunkTime(c: AofChunkMeta): number {
  return c.firstTs !== null ? c.firstTs * 1000 : c.capturedAt;
}

export async function planAofRestore(
  kv: KvReader,
  source: string,
  target: number,
): Promise<AofPlan> {
  const archive = new AofArchive(kv);
  const [files, bases, gaps] = await Promise.all([
    archive.files(source),
    archive.bases(source),
    archive.gaps(source),
  ]);
  const candidates: Timed[] = [];
  for (const base of bases.sort((a, b) => a.fileNo - b.fileNo)) {
    if (base.firstFileNo === null) continue;
    const following = files
      .filter((f) => f.fileNo >= base.firstFileNo!)
      .sort((a, b) => a.fileNo - b.fileNo);
    const first =
      following[0] === undefined
        ? undefined
        : await firstChunk(archive, source, following[0].fileNo);
    // The base is the dataset at the rewrite's fork; its first incr file was opened then.
    const from = Math.min(
      base.copiedAt,
      first === undefined ? base.copiedAt : chunkTime(first),
      following[0]?.firstSeenAt ?? base.copiedAt,
    );
    candidates.push({ base, files: following, from, firstChunk: first });
  }
  const lastChunkTimes = await Promise.all(
    files.map(async (f) => {
      let last: AofChunkMeta | undefined;
      for await (const c of archive.chunks(source, f.fileNo)) last = c;
      return last === undefined
        ? null
        : last.lastTs !== null
          ? last.lastTs * 1000 + 999
          : last.capturedAt;
    }),
  );
  const until = Math.max(
    ...lastChunkTimes.filter((t): t is number => t !== null),
    ...candidates.map((c) => c.from),
  );
  const chosen = candidates.filter((c) => c.from <= target).at(-1);
  const restorable =
    candidates.length === 0 ? [] : [{ from: isoUtc(candidates[0]!.from), until: isoUtc(until) }];
  if (chosen === undefined || target > until) {
    throw new RfError(
      'RF_TIME_OUT_OF_RANGE',
      `${isoUtc(target)} is outside what the AOF chunks can restore: ${restorable.map((r) => `${r.from} .. ${r.until}`).join(', ') || '(none yet)'}`,
      {
        details: { source, target: isoUtc(target), from: 'aof', restorable },
        hint: 'pick a time inside the range, or restore from the stream (--from stream); `rf info` shows both',
      },
    );
  }
  // A gap is filed under its file's number: one of the files replayed, or one missed between
  // them (an incr Redis deleted before the capture saw it), numbered in the order rf met them.
  const first = chosen.files[0]?.fileNo ?? Number.POSITIVE_INFINITY;
  const last = chosen.files.at(-1)?.fileNo ?? Number.NEGATIVE_INFINITY;
  const gap = gaps.find((g) => g.fileNo >= first && g.fileNo <= last && g.at <= target);
  if (gap !== undefined) {
    throw new RfError(
      'RF_TIME_IN_GAP',
      `the AOF chunks miss bytes of ${gap.file} (${gap.reason}) before ${isoUtc(target)}`,
      {
        details: { source, file: gap.file, start: gap.start, end: gap.end, reason: gap.reason },
        hint: 'restore from the stream (--from stream), or to a time after the next rewrite',
      },
    );
  }
  const precision: AofPrecision =
    chosen.firstChunk?.firstTs !== null && chosen.firstChunk !== undefined ? 'second' : 'chunk';
  return {
    source,
    target,
    base: chosen.base,
    files: chosen.files,
    precision,
    baseTime: chosen.from,
  };
}

/** The base's bytes, checked against its sha256 at the end (nothing for an 'empty' base). */
export async function* readAofBase(kv: KvReader, base: AofBaseMeta): AsyncIterable<Buffer> {
  const file = new AofArchive(kv).basePath(base);
  if (file === null) return;
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) {
    hash.update(chunk as Buffer);
    yield chunk as Buffer;
  }
  const actual = hash.digest('hex');
  if (actual !== base.sha256) {
    throw new RfError('RF_CHECKSUM', `AOF base ${base.name} does not match its checksum`, {
      details: { file, expected: base.sha256, actual },
      hint: 'run `rf verify` to list every damaged part of the archive',
    });
  }
}

export interface AofCut {
  dropped: DroppedTransaction | null;
}

/**
 * The commands after the base up to the target time, annotations left out, as RESP bytes. A
 * MULTI is held back until its EXEC: one the cut would split, or the archive ends inside, is
 * dropped and reported in `cut`.
 */
export async function* aofReplay(
  kv: KvReader,
  plan: AofPlan,
  stats: ReplayStats,
  cut: AofCut,
): AsyncIterable<Buffer> {
  const archive = new AofArchive(kv);
  const limitTs = Math.floor(plan.target / 1000);
  let ts: number | null = null;
  // The same transaction tracking as the stream's cut (plan.ts), on the AOF's byte positions.
  const state = new CommandState(0, null);
  let held: Buffer[] | null = null;
  let queued = 0;
  let multiTime: number | null = null;
  // Set when the target time stops the replay; otherwise it ran to the end of what is archived.
  let stoppedByTarget = false;
  files: for (const f of plan.files) {
    const scanner = new FrameScanner({ annotations: true, startAt: f.chunkStart });
    // Chunks of a file join up and reach what its record says was captured: a hole is damage.
    let at = f.chunkStart;
    const hole = (to: number) =>
      new RfError('RF_CORRUPT', `the AOF chunks of ${f.name} miss bytes ${at}..${to}`, {
        details: {
          source: plan.source,
          file: f.name,
          fileNo: f.fileNo,
          missingFrom: at,
          missingTo: to,
        },
        hint: 'run `rf verify` to list every damaged part of the archive',
      });
    for await (const chunk of archive.chunks(plan.source, f.fileNo)) {
      if (chunk.start >= f.capturedEnd) break;
      if (chunk.start !== at) throw hole(chunk.start);
      at = chunk.end;
      if (plan.precision === 'chunk' && chunk.capturedAt > plan.target) {
        stoppedByTarget = true;
        break files;
      }
      const bytes = await archive.readChunk(plan.source, chunk);
      const out: Buffer[] = [];
      for (const frame of scanner.push(bytes)) {
        if (frame.kind === 'annotation') {
          const m = /^TS:(\d+)$/.exec(frame.text);
          if (m) ts = Number(m[1]);
          if (plan.precision === 'second' && ts !== null && ts > limitTs) {
            if (out.length > 0) yield flush(out, stats);
            stoppedByTarget = true;
            break files;
          }
          continue;
        }
        const kind = kindOf(frame.args[0]);
        const time = ts === null ? chunk.capturedAt : ts * 1000;
        state.applyKind(kind, frame.args, frame.start);
        if (kind === Kind.multi) {
          held = [frame.bytes];
          queued = 0;
          multiTime = time;
          continue;
        }
        if (held !== null) {
          held.push(frame.bytes);
          if (kind !== Kind.exec) {
            if (kind === Kind.write) queued++;
            continue;
          }
          out.push(...held);
          stats.commands += held.length;
          stats.writes += queued;
          stats.last = { offset: frame.start, time, command: 'exec' };
          held = null;
          continue;
        }
        out.push(frame.bytes);
        stats.commands++;
        if (kind === Kind.write) {
          stats.writes++;
          stats.last = { offset: frame.start, time, command: nameOf(frame.args[0]) };
        }
      }
      stats.segments++;
      stats.offset = chunk.end;
      if (out.length > 0) yield flush(out, stats);
    }
    if (at < f.capturedEnd) throw hole(f.capturedEnd);
  }
  if (held !== null && state.multiAt !== null) {
    cut.dropped = {
      multiAt: state.multiAt,
      time: multiTime,
      commands: queued,
      reason: stoppedByTarget ? 'target-inside-transaction' : 'open-at-archive-end',
    };
  }
  if (stats.commands === 0)
    yield flush([Buffer.from('*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n')], stats, 1);
}

function flush(out: Buffer[], stats: ReplayStats, commands = 0): Buffer {
  const buf = Buffer.concat(out);
  stats.bytes += buf.length;
  stats.commands += commands;
  return buf;
}
