// Over 400 lines: one pass over a timeline checks segments, offsets, entries and the time index
// together, so each segment is read once; splitting would read it once per check.
import { isRfError } from '../errors.js';
import { FrameScanner, type ScannedFrame } from '../resp/frames.js';
import { decodeSegment } from '../store/codec.js';
import { CommandState, Kind, kindAt } from '../store/commands.js';
import { keys, prefixEnd, startFromTimeKey } from '../store/keys.js';
import { readOffload, segmentOffloaded } from '../store/offload.js';
import type {
  BaseMeta,
  DurableState,
  Entry,
  RetentionRecord,
  SeenRecord,
  SegmentMeta,
  Timeline,
} from '../store/types.js';
import { Peekable, type SourceCheck } from './context.js';
import { KeyIndexCheck } from './key-index.js';

/**
 * The stream half of `rf verify`: the timelines and their gaps, every segment against its
 * checksum and its meta, offsets contiguous from the base to the durable offset, every entry one
 * well-formed command, and the time index that restores and `rf log` seek with.
 *
 * Reading goes through a KvReader, so it runs while `rf listen` appends: each timeline is checked
 * up to the durable offset its record had when verify read it, and later segments are left alone.
 */

export interface StreamIndex {
  timelines: Timeline[];
  bases: BaseMeta[];
  /** Per timeline, the offset retention pruned it to (`rf listen --retain`): segments start after it. */
  pruned: Map<number, number>;
  /** Set once retention has run: timelines before the window were dropped on purpose. */
  retention: RetentionRecord | undefined;
  /** How far the capture is known complete while the master idles (extends the last range). */
  seen: SeenRecord | undefined;
}

async function readOptional<T>(check: SourceCheck, key: string): Promise<T | undefined> {
  const raw = await check.kv.get(key);
  if (raw === undefined) return undefined;
  try {
    return JSON.parse(raw.toString('utf8')) as T;
  } catch (err) {
    check.report('record-unreadable', `the record is not valid JSON: ${(err as Error).message}`, {
      key,
    });
    return undefined;
  }
}

/** Reads the timeline and base records, and checks how the timelines follow each other. */
export async function readStreamIndex(check: SourceCheck): Promise<StreamIndex> {
  const { source: src } = check;
  const timelines = (await check.records<Timeline>(keys.timelinePrefix(src))).sort(
    (a, b) => a.id - b.id,
  );
  const bases = await check.records<BaseMeta>(keys.basePrefix(src));
  const known = new Set(timelines.map((t) => t.id));
  const retention = await readOptional<RetentionRecord>(check, keys.retention(src));
  const seen = await readOptional<SeenRecord>(check, keys.seen(src));
  const pruned = new Map<number, number>();
  for (const t of timelines) {
    const p = await readOptional<number>(check, keys.pruned(src, t.id));
    if (p !== undefined) pruned.set(t.id, p);
  }

  // Segments, data, time index entries or bases under a timeline id that has no record: the
  // timeline (and the gap before it) went missing from the index.
  const orphans = new Set<number>();
  for (const prefix of [
    `s/${src}/seg/`,
    `s/${src}/dat/`,
    `s/${src}/time/`,
    `s/${src}/kix/`,
    keys.basePrefix(src),
  ]) {
    for (const id of await check.idsUnder(prefix, 8)) if (!known.has(id)) orphans.add(id);
  }
  for (const id of [...orphans].sort((a, b) => a - b)) {
    check.report(
      'timeline-missing',
      `timeline ${id} has stored data but no timeline record: its range and the gap before it are not on record`,
      { timeline: id },
    );
  }

  let previous: Timeline | undefined;
  for (const t of timelines) {
    if (previous === undefined) {
      // Retention drops whole timelines from the oldest on: a first id above 1 is expected then.
      if (t.id !== 1 && !orphans.has(1) && retention === undefined) {
        check.report(
          'timeline-missing',
          `the first timeline on record is ${t.id}: timelines 1..${t.id - 1} are missing`,
          { timeline: t.id },
        );
      }
    } else {
      if (t.id !== previous.id + 1 && !orphans.has(previous.id + 1)) {
        check.report(
          'timeline-missing',
          `timelines ${previous.id + 1}..${t.id - 1} are missing between ${previous.id} and ${t.id}`,
          { timeline: t.id },
          { from: previous.lastTime, until: t.startedAt },
        );
      }
      if (t.reason === 'initial') {
        check.report(
          'timeline-order',
          `timeline ${t.id} says it is the first, but follows timeline ${previous.id}: the reason for the gap is lost`,
          { timeline: t.id },
          { from: previous.lastTime, until: t.startedAt },
        );
      }
      if (t.startedAt < previous.lastTime) {
        check.report(
          'timeline-order',
          `timeline ${t.id} starts before timeline ${previous.id} ends: two histories claim the same time`,
          { timeline: t.id },
          { from: t.startedAt, until: previous.lastTime },
        );
      }
    }
    previous = t;
  }
  return { timelines, bases, pruned, retention, seen };
}

/** Checks every segment of one timeline, up to the durable offset of its record. */
export async function checkTimeline(
  check: SourceCheck,
  t: Timeline,
  prunedBefore: number | undefined,
): Promise<void> {
  const { source: src, counters, progress } = check;
  const durable = t.durableOffset;
  const metaRange = { gte: keys.segmentPrefix(src, t.id), lte: keys.segment(src, t.id, durable) };
  // The data keys share the meta keys' suffix: `…/dat/<tl>/<start>`.
  const datPrefix = keys.data(src, t.id, 0).slice(0, -16);
  const metas = new Peekable(check.recordStream<SegmentMeta>(metaRange));
  const data = new Peekable(
    check.kv.entries({ gte: datPrefix, lte: keys.data(src, t.id, durable) }),
  );
  const timeIndex = new Peekable(
    check.kv.entries({
      gte: keys.timePrefix(src, t.id),
      lt: prefixEnd(keys.timePrefix(src, t.id)),
    }),
  );
  const startOf = (key: string) => Number.parseInt(key.slice(key.lastIndexOf('/') + 1), 16);
  const keyIndex = new KeyIndexCheck(check, t.id, durable);
  // Segment data --local-retain left in the bucket alone: `rf verify --repo` checks it there.
  // A running rf listen goes on removing while verify reads: a segment found without its data
  // is looked up in the record as it is then.
  let offloaded = await readOffload(check.kv, src);

  // Retention deletes the oldest segments and records how far: the rest starts right after.
  let expected = (prunedBefore ?? t.baseOffset) + 1;
  let previous: SegmentMeta | undefined;
  /** Command state after the previous segment, when it could be decoded. */
  let after: { db: number; multiAt: number | null } | null =
    prunedBefore === undefined ? { db: 0, multiAt: null } : null;
  let segments = 0;
  let bytes = 0;
  let continuityBroken = false;
  try {
    for (;;) {
      const rec = await metas.take();
      if (rec === undefined) break;
      const meta = rec.value;
      const start = startOf(rec.key);
      // Data values before this start belong to no meta.
      for (
        let d = await data.peek();
        d !== undefined && startOf(d[0]) < start;
        d = await data.peek()
      ) {
        reportOrphan(check, t.id, startOf(d[0]), d[1].length);
        await data.take();
      }
      const d = await data.peek();
      const value =
        d !== undefined && startOf(d[0]) === start ? (await data.take())![1] : undefined;
      if (meta === undefined) {
        after = null;
        continue;
      }
      segments++;
      counters.segments++;
      const time = { from: meta.firstTime, until: meta.lastTime };
      const where = { timeline: t.id, offsets: { from: meta.start, until: meta.end } };

      if (meta.start > expected) {
        continuityBroken = true;
        check.report(
          'offsets-missing',
          `offsets ${expected}..${meta.start - 1} of timeline ${t.id} are in no segment (${meta.start - expected} bytes of the stream lost)`,
          { timeline: t.id, offsets: { from: expected, until: meta.start - 1 } },
          { from: previous?.lastTime ?? t.startedAt, until: meta.firstTime },
        );
        after = null;
      } else if (meta.start < expected) {
        continuityBroken = true;
        check.report(
          'offsets-overlap',
          `the segment at offset ${meta.start} overlaps the one before it, which ends at ${expected - 1}`,
          where,
          time,
        );
      }
      if (meta.timeline !== t.id || meta.start !== start || meta.end < meta.start) {
        check.report(
          'segment-meta',
          `the segment meta under key ${rec.key} says timeline ${meta.timeline}, offsets ${meta.start}..${meta.end}`,
          where,
          time,
        );
      }
      if (meta.end > durable) {
        check.report(
          'timeline-record',
          `the segment ends at ${meta.end}, past the timeline's durable offset ${durable}`,
          where,
          time,
        );
      }

      // The time index: one key per segment, ordered like the segments (capture times never go back).
      const want = keys.time(src, t.id, meta.lastTime, meta.start);
      for (
        let k = await timeIndex.peek();
        k !== undefined && k[0] < want;
        k = await timeIndex.peek()
      ) {
        if (startFromTimeKey(k[0]) <= durable) reportStrayTime(check, t.id, k[0]);
        await timeIndex.take();
      }
      if ((await timeIndex.peek())?.[0] === want) {
        await timeIndex.take();
      } else {
        check.report(
          'time-index',
          `the segment is missing from the time index: restores and rf log cannot find it by time`,
          where,
          time,
        );
      }

      if (value === undefined && !segmentOffloaded(offloaded, t.id, meta.end))
        offloaded = await readOffload(check.kv, src);
      if (value === undefined && segmentOffloaded(offloaded, t.id, meta.end)) {
        // Its index stays: it is neither judged nor removed as stray.
        await keyIndex.segment(meta, meta, null);
        bytes += meta.end - meta.start + 1;
        after = null;
      } else if (value === undefined) {
        check.report(
          'segment-data-missing',
          `the segment's data is missing (${meta.end - meta.start + 1} bytes of the stream)`,
          where,
          time,
        );
        after = null;
      } else {
        const read = checkSegmentData(check, t.id, meta, value, after);
        // The db the stream itself left, as the writer had it, over a meta that may be wrong.
        await keyIndex.segment(meta, after ?? meta, read.entries);
        after = read.after;
        bytes += meta.end - meta.start + 1;
        counters.streamBytes += value.length;
        progress.done += value.length;
      }
      expected = Math.max(expected, meta.end + 1);
      previous = meta;
    }
    for (let d = await data.take(); d !== undefined; d = await data.take()) {
      reportOrphan(check, t.id, startOf(d[0]), d[1].length);
    }
    for (let k = await timeIndex.take(); k !== undefined; k = await timeIndex.take()) {
      if (startFromTimeKey(k[0]) <= durable) reportStrayTime(check, t.id, k[0]);
    }
    await keyIndex.finish();
  } finally {
    await Promise.all([metas.close(), data.close(), timeIndex.close(), keyIndex.close()]);
  }

  if (expected - 1 < durable) {
    continuityBroken = true;
    check.report(
      'offsets-missing',
      `offsets ${expected}..${durable} of timeline ${t.id} are in no segment: the timeline record says it is durable up to ${durable}`,
      { timeline: t.id, offsets: { from: expected, until: durable } },
      { from: previous?.lastTime ?? t.startedAt, until: t.lastTime },
    );
  }
  // Counts only say something new when the offsets themselves join up; the record keeps
  // counting what retention pruned.
  if (
    !continuityBroken &&
    prunedBefore === undefined &&
    (segments !== t.segments || bytes !== t.bytes)
  ) {
    check.report(
      'timeline-record',
      `the timeline record counts ${t.segments} segments and ${t.bytes} bytes; the store holds ${segments} and ${bytes}`,
      { timeline: t.id },
      { from: t.startedAt, until: t.lastTime },
    );
  }
  if (previous !== undefined && previous.lastTime !== t.lastTime && previous.end === durable) {
    check.report(
      'timeline-record',
      `the timeline record says its last write was at ${t.lastTime}, the last segment says ${previous.lastTime}`,
      { timeline: t.id },
      { from: previous.lastTime, until: t.lastTime },
    );
  }
}

type CommandAt = { db: number; multiAt: number | null };

/**
 * Decodes one segment (checksum first), checks every entry is one whole command, and checks the
 * meta's counts, times and command state. Returns the command state after the segment (null
 * when it could not be decoded or a command is malformed) and the entries (null when the data
 * could not be decoded).
 */
function checkSegmentData(
  check: SourceCheck,
  tl: number,
  meta: SegmentMeta,
  value: Buffer,
  before: CommandAt | null,
): { after: CommandAt | null; entries: Entry[] | null } {
  const where = { timeline: tl, offsets: { from: meta.start, until: meta.end } };
  const time = { from: meta.firstTime, until: meta.lastTime };
  let entries: Entry[];
  try {
    entries = decodeSegment(
      value,
      meta,
      `${check.source}/timeline ${tl}/offset ${meta.start}`,
    ).entries;
  } catch (err) {
    if (isRfError(err, 'RF_CHECKSUM')) {
      check.report(
        'segment-checksum',
        `the segment's data does not match its checksum (CRC-32 ${err.details.actual}, recorded ${meta.crc})`,
        where,
        time,
      );
      return { after: null, entries: null };
    }
    if (isRfError(err, 'RF_CORRUPT')) {
      check.report('segment-corrupt', err.message, where, time);
      return { after: null, entries: null };
    }
    throw err;
  }
  check.counters.entries += entries.length;

  if (before !== null && (before.db !== meta.db || before.multiAt !== meta.multiAt)) {
    check.report(
      'segment-meta',
      `the segment meta says db ${meta.db}${meta.multiAt === null ? '' : `, MULTI open at ${meta.multiAt}`} at its start; the segments before it leave db ${before.db}${before.multiAt === null ? '' : `, MULTI open at ${before.multiAt}`}`,
      where,
      time,
    );
  }

  // Carry the state the stream itself produced, so one wrong meta is reported once, not again
  // at every segment after it.
  const state =
    before === null
      ? new CommandState(meta.db, meta.multiAt)
      : new CommandState(before.db, before.multiAt);
  let writes = 0;
  let malformed = 0;
  let firstBad: Entry | undefined;
  let scanner = new FrameScanner({ startAt: meta.start });
  let lastTime = meta.firstTime;
  let timeBack: Entry | undefined;
  // Per entry, from the scanner: how many frames it held, whether the one it should hold is a
  // whole command, its kind, and SELECT's args.
  const seen = { frames: 0, whole: false, kind: Kind.write as Kind, selectArgs: [] as Buffer[] };
  const onFrame = (f: ScannedFrame) => {
    seen.frames++;
    seen.whole = f.text === null && f.argc > 0 && f.pos === 0 && f.length === f.buf.length;
    if (!seen.whole) return;
    seen.kind = kindAt(f.buf, f.nameStart, f.nameLength);
    if (seen.kind === Kind.select) seen.selectArgs = f.args();
  };
  for (const e of entries) {
    seen.frames = 0;
    seen.whole = false;
    try {
      scanner.scan(e.bytes, onFrame);
    } catch {
      seen.whole = false;
    }
    if (seen.frames !== 1 || !seen.whole || scanner.pendingBytes !== 0) {
      malformed++;
      firstBad ??= e;
      scanner = new FrameScanner({ startAt: e.offset + e.bytes.length });
      continue;
    }
    const { kind } = seen;
    state.applyKind(kind, kind === Kind.select ? seen.selectArgs : [], e.offset);
    if (kind === Kind.write) writes++;
    if (e.time < lastTime) timeBack ??= e;
    lastTime = e.time;
  }
  if (firstBad !== undefined) {
    check.report(
      'command-malformed',
      `${malformed} stored ${malformed === 1 ? 'entry is' : 'entries are'} not one well-formed RESP command, the first at offset ${firstBad.offset}: ${JSON.stringify(firstBad.bytes.subarray(0, 40).toString('latin1'))}`,
      {
        timeline: tl,
        offsets: { from: firstBad.offset, until: firstBad.offset + firstBad.bytes.length - 1 },
      },
      { from: firstBad.time, until: firstBad.time },
    );
  }
  if (timeBack !== undefined) {
    check.report(
      'segment-meta',
      `capture times go back at offset ${timeBack.offset}: the time index and restores rely on them never doing so`,
      where,
      time,
    );
  }
  const first = entries[0];
  const last = entries[entries.length - 1];
  const mismatches: string[] = [];
  if (first !== undefined && first.time !== meta.firstTime)
    mismatches.push(`firstTime ${meta.firstTime} (data ${first.time})`);
  if (last !== undefined && last.time !== meta.lastTime)
    mismatches.push(`lastTime ${meta.lastTime} (data ${last.time})`);
  if (malformed === 0 && writes !== meta.writes)
    mismatches.push(`writes ${meta.writes} (data ${writes})`);
  if (mismatches.length > 0) {
    check.report(
      'segment-meta',
      `the segment meta disagrees with its data: ${mismatches.join(', ')}`,
      where,
      time,
    );
  }
  return {
    after: malformed === 0 ? { db: state.db, multiAt: state.multiAt } : null,
    entries: malformed === 0 ? entries : null,
  };
}

function reportOrphan(check: SourceCheck, tl: number, start: number, length: number): void {
  check.report(
    'segment-orphan',
    `segment data at offset ${start} (${length} bytes) has no segment meta: it is invisible to restores`,
    { timeline: tl, offsets: { from: start, until: start } },
  );
}

function reportStrayTime(check: SourceCheck, tl: number, key: string): void {
  check.report(
    'time-index',
    `the time index names a segment at offset ${startFromTimeKey(key)} that has no meta, or another last write time`,
    { timeline: tl, offsets: { from: startFromTimeKey(key), until: startFromTimeKey(key) }, key },
  );
}

/** The resume state must point at the last timeline, at or past what its record says. */
export async function checkState(
  check: SourceCheck,
  timelines: readonly Timeline[],
): Promise<void> {
  const last = timelines[timelines.length - 1];
  if (last === undefined) return;
  const raw = await check.kv.get(keys.state(check.source));
  if (raw === undefined) {
    check.report(
      'state',
      'the resume state is missing: the next `rf listen` cannot continue the last timeline and will start a new one',
      { timeline: last.id },
    );
    return;
  }
  let state: DurableState;
  try {
    state = JSON.parse(raw.toString('utf8')) as DurableState;
  } catch (err) {
    check.report(
      'record-unreadable',
      `the resume state is not valid JSON: ${(err as Error).message}`,
      {
        key: keys.state(check.source),
      },
    );
    return;
  }
  if (state.timeline !== last.id || state.durableOffset < last.durableOffset) {
    check.report(
      'state',
      `the resume state points at timeline ${state.timeline} offset ${state.durableOffset}, but timeline ${last.id} is durable up to ${last.durableOffset}`,
      { timeline: last.id, offsets: { from: state.durableOffset, until: last.durableOffset } },
    );
  }
}
