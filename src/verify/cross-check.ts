// Over 400 lines: the two write sources, the anchor search and the comparison share one Write
// and Cursor model that would have to be exported to split them; one algorithm, one file.
import { WindowLookup } from '../bounds/windows.js';
import { isRfError } from '../errors.js';
import { formatCommand } from '../resp/format.js';
import { FrameScanner } from '../resp/frames.js';
import { Archive } from '../store/archive.js';
import { AofArchive, type AofChunkMeta, aofKeys } from '../store/chunks.js';
import { forEachEntry } from '../store/codec.js';
import { CommandState, frameKindAt, Kind, kindAt, parseArgs } from '../store/commands.js';
import { prefixEnd } from '../store/keys.js';
import { json } from '../store/store.js';
import type { Timeline } from '../store/types.js';
import type { AofRun } from './aof.js';
import type { SourceCheck } from './context.js';
import type { Location } from './problems.js';

/**
 * The cross-check: where the stream and the AOF both cover the same stretch of the master's
 * history, they must hold the same writes, in the same order, each applied to the same db.
 *
 * The bytes cannot be compared: the stream also carries PING, REPLCONF GETACK and PUBLISH, the
 * AOF carries `#TS` annotations, and SELECT (and MULTI/EXEC) fall in different places, since
 * each target re-selects the db on its own schedule (server.c propagateNow feeds both from the
 * same command vector, so the data writes themselves are identical, byte for byte). So each
 * side is reduced to its data writes, each with the db it applies to, and those are compared.
 *
 * AOF byte positions do not line up with replication offsets, so the two are lined up by
 * content: a short run of writes from one side (the anchor) is looked for in the other, with the
 * capture times ruling out matches that cannot be the same moment. Once lined up, both are read
 * side by side from where the later of the two begins until either ends; the first difference
 * is reported with its place on both sides.
 */

/** Writes in an anchor: long enough to be unique in a real workload, short enough to hold. */
const ANCHOR = 16;
/** Clock difference allowed between rf's capture clock and the Redis host's (`rf ship`). */
const SKEW_MS = 5_000;

/** One data write, as either side holds it. */
interface Write {
  /** The db it applies to; -1 when not known yet (a run that starts mid-file, before a SELECT). */
  db: number;
  /** The command is buf[pos, pos + len): no slice is made per write. */
  buf: Buffer;
  pos: number;
  len: number;
  /**
   * Stream: the stored time, when the write had run by (its capture, or earlier by the master's
   * offset clock). AOF: when its chunk was cut (the write happened before).
   */
  time: number;
  /**
   * Stream: since when the write may have run. A write captured live ran within a live capture's
   * margin of its stored time, which SKEW_MS covers: `time`. One the master buffered (during a
   * snapshot transfer, or while rf was away) is stored when it arrived, seconds after it ran:
   * its imprecise window's start. AOF: not known (-Infinity).
   */
  lower: number;
  /** Stream offset or AOF file position of the frame; `whereOf` makes the Location of it. */
  at: number;
  /** What the batch the write came in shares: its timeline, or its AOF file. */
  from: { timeline: number } | { file: string; fileNo: number };
}

/**
 * Writes come a segment or a chunk at a time: reading tens of millions of them one by one
 * through async generators cost a promise per write, most of the cross-check's time.
 */
type Writes = AsyncGenerator<Write[], void, undefined>;

function whereOf(w: Write): Location {
  const end = w.at + w.len;
  return 'timeline' in w.from
    ? { timeline: w.from.timeline, offsets: { from: w.at, until: end - 1 } }
    : { file: w.from.file, fileNo: w.from.fileNo, bytes: { from: w.at, until: end } };
}

/** A stretch of one timeline with every segment present and sound. */
export interface StreamRun {
  timeline: Timeline;
  /** Start offset of the first segment, end offset of the last. */
  from: number;
  until: number;
  firstTime: number;
  lastTime: number;
}

/** The codes that make a segment unusable for comparison. */
const DAMAGE = new Set([
  'segment-checksum',
  'segment-corrupt',
  'segment-data-missing',
  'command-malformed',
  'segment-meta',
  'offsets-overlap',
]);

/** Splits each timeline into runs of sound, contiguous segments, from the metas and the problems found. */
export async function streamRuns(
  check: SourceCheck,
  timelines: readonly Timeline[],
): Promise<StreamRun[]> {
  const archive = new Archive(check.kv);
  const runs: StreamRun[] = [];
  for (const t of timelines) {
    const damaged = check.problems
      .filter(
        (p) => DAMAGE.has(p.code) && p.where.timeline === t.id && p.where.offsets !== undefined,
      )
      .map((p) => p.where.offsets!);
    let run: StreamRun | null = null;
    let expected = -1;
    for await (const meta of archive.segments(check.source, t.id)) {
      if (meta.start > t.durableOffset) break;
      const bad = damaged.some((d) => d.from <= meta.end && d.until >= meta.start);
      if (bad || (run !== null && meta.start !== expected)) run = null;
      if (!bad) {
        if (run === null) {
          run = {
            timeline: t,
            from: meta.start,
            until: meta.end,
            firstTime: meta.firstTime,
            lastTime: meta.lastTime,
          };
          runs.push(run);
        } else {
          run.until = meta.end;
          run.lastTime = meta.lastTime;
        }
      }
      expected = meta.end + 1;
    }
  }
  return runs;
}

async function* streamWrites(check: SourceCheck, run: StreamRun): Writes {
  const archive = new Archive(check.kv);
  const from = { timeline: run.timeline.id };
  const windows = await archive.imprecise(check.source, run.timeline.id);
  const late = windows.length === 0 ? null : new WindowLookup(windows);
  const lowerOf = (offset: number, time: number) => late?.at(run.timeline.id, offset)?.from ?? time;
  let state: CommandState | null = null;
  for await (const meta of archive.segments(check.source, run.timeline.id, run.from)) {
    if (meta.start > run.until) return;
    const { data, where } = await archive.segmentData(check.source, meta);
    state ??= new CommandState(meta.db, meta.multiAt);
    const st = state;
    const batch: Write[] = [];
    forEachEntry(data, meta, where, (offset, time, pos, len) => {
      const kind = frameKindAt(data, pos);
      if (kind === Kind.select || kind === Kind.multi || kind === Kind.exec) {
        const args = kind === Kind.select ? parseArgs(data.subarray(pos, pos + len)) : [];
        st.applyKind(kind, args, offset);
      } else if (kind === Kind.write) {
        const lower = lowerOf(offset, time);
        batch.push({ db: st.db, buf: data, pos, len, time, lower, at: offset, from });
      }
    });
    if (batch.length > 0) yield batch;
  }
}

async function* aofWrites(check: SourceCheck, run: AofRun): Writes {
  const archive = new AofArchive(check.kv);
  // A run that begins at the start of a file begins in db 0, as an AOF load does (aof.c); one
  // that begins after damage does not know its db until the next SELECT.
  const first = run.pieces[0];
  let db = first !== undefined && first.from === first.record.chunkStart ? 0 : -1;
  for (const piece of run.pieces) {
    const prefix = aofKeys.chunkPrefix(check.source, piece.record.fileNo);
    const from = { file: piece.record.name, fileNo: piece.record.fileNo };
    for await (const [, raw] of check.kv.entries({
      gte: aofKeys.chunk(check.source, piece.record.fileNo, piece.from),
      lt: prefixEnd(prefix),
    })) {
      const meta = json.decode<AofChunkMeta>(raw);
      if (meta.start >= piece.until) break;
      const data = await archive.readChunk(check.source, meta);
      const scanner = new FrameScanner({ startAt: meta.start, annotations: true });
      const batch: Write[] = [];
      scanner.scan(data, (f) => {
        if (f.text !== null) return;
        const kind = kindAt(f.buf, f.nameStart, f.nameLength);
        if (kind === Kind.select) {
          const n = Number.parseInt(f.args()[1]?.toString('latin1') ?? '', 10);
          if (Number.isInteger(n) && n >= 0) db = n;
        } else if (kind === Kind.write) {
          batch.push({
            db,
            buf: f.buf,
            pos: f.pos,
            len: f.length,
            time: meta.capturedAt,
            lower: Number.NEGATIVE_INFINITY,
            at: f.start,
            from,
          });
        }
      });
      if (batch.length > 0) yield batch;
    }
  }
}

function frameOf(w: Write): Buffer {
  return w.buf.subarray(w.pos, w.pos + w.len);
}

function sameWrite(a: Write, b: Write): boolean {
  if (a.db !== b.db && a.db !== -1 && b.db !== -1) return false;
  if (a.len === b.len && a.buf.compare(b.buf, b.pos, b.pos + b.len, a.pos, a.pos + a.len) === 0)
    return true;
  // Only the command name may differ in letter case, and neither side changes it; allow it anyway.
  const x = parseArgs(frameOf(a));
  const y = parseArgs(frameOf(b));
  return (
    x.length === y.length &&
    x.every((arg, i) =>
      i === 0
        ? arg.toString('latin1').toLowerCase() === y[0]!.toString('latin1').toLowerCase()
        : arg.equals(y[i]!),
    )
  );
}

/**
 * Looks for `anchor` (consecutive writes) in `haystack`; returns how many writes of the haystack
 * come before the match, or -1. `admissible` rules out matches at impossible times.
 */
async function findAnchor(
  anchor: readonly Write[],
  haystack: Writes,
  admissible: (candidate: Write, anchorFirst: Write) => boolean,
): Promise<number> {
  const window: Write[] = [];
  let index = 0;
  try {
    for await (const batch of haystack) {
      for (const w of batch) {
        window.push(w);
        if (window.length > anchor.length) window.shift();
        if (window.length === anchor.length && admissible(window[0]!, anchor[0]!)) {
          if (window.every((x, i) => sameWrite(x, anchor[i]!))) return index - anchor.length + 1;
        }
        index++;
      }
    }
    return -1;
  } finally {
    await haystack.return(undefined);
  }
}

async function takeWrites(source: Writes, n: number, after?: (w: Write) => boolean) {
  const out: Write[] = [];
  let index = 0;
  let at = -1;
  try {
    for await (const batch of source) {
      for (const w of batch) {
        if (after === undefined || after(w)) {
          if (at < 0) at = index;
          out.push(w);
          if (out.length >= n) return { writes: out, at };
        }
        index++;
      }
    }
  } finally {
    await source.return(undefined);
  }
  return { writes: out, at };
}

/** Reads writes a batch at a time, handing them out by index without a promise per write. */
class Cursor {
  private batch: Write[] = [];
  private i = 0;

  constructor(private readonly source: Writes) {}

  /** Writes left in the batch at hand, reading the next batch when it is used up; 0 at the end. */
  async available(): Promise<number> {
    while (this.i >= this.batch.length) {
      const r = await this.source.next();
      if (r.done) return 0;
      this.batch = r.value;
      this.i = 0;
    }
    return this.batch.length - this.i;
  }

  /** The k-th write after the current one; only below what `available` said. */
  at(k: number): Write {
    return this.batch[this.i + k]!;
  }

  advance(n: number): void {
    this.i += n;
  }

  /** Passes over `n` writes; false when the source ends first. */
  async skip(n: number): Promise<boolean> {
    for (let left = n; left > 0; ) {
      const have = await this.available();
      if (have === 0) return false;
      const k = Math.min(have, left);
      this.advance(k);
      left -= k;
    }
    return true;
  }

  close(): Promise<unknown> {
    return this.source.return(undefined);
  }
}

export interface CrossCheckPair {
  stream: StreamRun;
  aof: AofRun;
  /** Writes found in both and compared. */
  compared: number;
  /** Whether the two could be lined up at all. */
  aligned: boolean;
  /** Whether a difference was found (after `compared` writes that agree). */
  differs: boolean;
}

/** Compares every stream run with every AOF run that can share writes with it. */
export async function crossCheck(
  check: SourceCheck,
  stream: readonly StreamRun[],
  aof: readonly AofRun[],
): Promise<CrossCheckPair[]> {
  const pairs: CrossCheckPair[] = [];
  for (const s of stream) {
    for (const a of aof) {
      // The AOF run's writes happened before its last chunk was cut; the stream run ended at its
      // last capture. Runs that cannot share a moment are not compared.
      const aFirst =
        a.firstTs === null ? a.firstChunkAt : Math.min(a.firstChunkAt, (a.firstTs + 1) * 1000);
      if (a.lastChunkAt + SKEW_MS < s.firstTime || s.lastTime + SKEW_MS < aFirst - SKEW_MS)
        continue;
      check.progress.phase = `${check.source}: cross-check timeline ${s.timeline.id} with the AOF`;
      try {
        pairs.push(await comparePair(check, s, a, aFirst));
      } catch (err) {
        // Only sound parts are compared; one that fails now changed under verify (rf listen
        // writes on): the checks above, or the next run, report it.
        if (!isRfError(err, 'RF_CHECKSUM') && !isRfError(err, 'RF_CORRUPT')) throw err;
      }
    }
  }
  return pairs;
}

async function comparePair(
  check: SourceCheck,
  s: StreamRun,
  a: AofRun,
  aFirst: number,
): Promise<CrossCheckPair> {
  const pair: CrossCheckPair = { stream: s, aof: a, compared: 0, aligned: false, differs: false };
  // Line the two up: a run of stream writes that ran after the AOF run began, found in the AOF
  // (the usual case: the AOF holds writes from before rf listen started), or else the AOF's
  // first writes found in the stream (the AOF capture started later, or after a gap). A write
  // runs before its AOF chunk is cut and after its stream `lower`: matches outside that are
  // another moment's writes with the same content.
  let delta: number | null = null;
  const sAnchor = await takeWrites(
    streamWrites(check, s),
    ANCHOR,
    (w) => w.lower >= aFirst + SKEW_MS,
  );
  if (sAnchor.writes.length > 0) {
    const j = await findAnchor(
      sAnchor.writes,
      aofWrites(check, a),
      (candidate, first) => candidate.time + SKEW_MS >= first.lower,
    );
    if (j >= 0) delta = j - sAnchor.at;
  }
  if (delta === null) {
    const aAnchor = await takeWrites(aofWrites(check, a), ANCHOR);
    if (aAnchor.writes.length > 0) {
      const i = await findAnchor(
        aAnchor.writes,
        streamWrites(check, s),
        (candidate, first) => candidate.lower <= first.time + SKEW_MS,
      );
      if (i >= 0) delta = -i;
    }
  }
  if (delta === null) {
    // Only a stretch both certainly hold makes this a problem: stream writes after the AOF run
    // began and before its last `#TS` second (without #TS the AOF's last write time is unknown).
    const aLast = a.lastTs === null ? null : a.lastTs * 1000;
    const certain =
      aLast !== null &&
      sAnchor.writes.length >= ANCHOR &&
      sAnchor.writes[ANCHOR - 1]!.time <= aLast - SKEW_MS;
    if (certain) {
      check.report(
        'cross-check-unaligned',
        `the stream and the AOF both hold the writes of this time but share no run of ${ANCHOR} writes: one of them does not hold what the master wrote`,
        whereOf(sAnchor.writes[0]!),
        { from: sAnchor.writes[0]!.time, until: aLast },
        aofLocation(a),
      );
    }
    return pair;
  }
  pair.aligned = true;
  // Stream write i is AOF write i + delta. Read both from where the later one begins.
  const sw = new Cursor(streamWrites(check, s));
  const aw = new Cursor(aofWrites(check, a));
  try {
    if (!(await sw.skip(Math.max(0, -delta))) || !(await aw.skip(Math.max(0, delta)))) return pair;
    for (;;) {
      const n = Math.min(await sw.available(), await aw.available());
      if (n === 0) break;
      for (let k = 0; k < n; k++) {
        const x = sw.at(k);
        const y = aw.at(k);
        if (!sameWrite(x, y)) {
          check.report(
            'cross-check-mismatch',
            `write ${pair.compared + 1} of the stretch both hold differs: the stream has ${describe(x)}, the AOF has ${describe(y)}`,
            whereOf(x),
            { from: x.time, until: x.time },
            whereOf(y),
          );
          pair.differs = true;
          check.counters.compared += k;
          return pair;
        }
        pair.compared++;
      }
      check.counters.compared += n;
      sw.advance(n);
      aw.advance(n);
    }
  } finally {
    await Promise.all([sw.close(), aw.close()]);
  }
  return pair;
}

function describe(w: Write): string {
  return `${formatCommand(parseArgs(frameOf(w)), 64)} in db ${w.db < 0 ? '?' : w.db}`;
}

function aofLocation(a: AofRun): Location {
  const first = a.pieces[0]!;
  const last = a.pieces[a.pieces.length - 1]!;
  return first.record.fileNo === last.record.fileNo
    ? {
        file: first.record.name,
        fileNo: first.record.fileNo,
        bytes: { from: first.from, until: last.until },
      }
    : { file: `${first.record.name} .. ${last.record.name}`, fileNo: first.record.fileNo };
}
