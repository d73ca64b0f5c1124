import type { OffsetClock } from '../bounds/clock.js';
import { type ImpreciseWindow, WindowTracker } from '../bounds/windows.js';
import type { Logger } from '../logger.js';
import type { ScannedFrame } from '../resp/frames.js';
import { SegmentBuilder, segmentChecksum } from './codec.js';
import { CommandState, Kind, kindOf, parseArgs } from './commands.js';
import { KeyIndexBuilder } from './key-index.js';
import { keys } from './keys.js';
import { MinuteTally } from './minutes.js';
import { windowOp } from './samples.js';
import { type BatchOp, json, type Store } from './store.js';
import type { DurableState, SegmentMeta, Timeline } from './types.js';

export interface WriterOptions {
  /** A segment is sealed once it holds this many stream bytes. */
  maxSegmentBytes: number;
  log: Logger;
  /** Called once a segment is durable, for metrics. */
  onCommit?: (meta: SegmentMeta) => void;
  /** The master's offset clock: bounds each entry's time, and tells late entries from live ones. */
  clock?: OffsetClock;
  /** The timeline's last imprecise window, continued if the first entry is late too. */
  lastWindow?: ImpreciseWindow;
  /**
   * Records stored in each commit's batch, taken as the batch is made: the master's offset
   * samples since the last commit (daemon/offset-samples.ts), which then cost no write of their
   * own and are as recent as the segment when rf is killed.
   */
  withCommit?: () => BatchOp[];
  /**
   * Write each segment's key index (key-index.ts) in its batch; on unless false, which makes a
   * store as rf wrote it before it kept the index.
   */
  keyIndex?: boolean;
}

/**
 * Appends stream entries of one timeline and commits them as segments. A segment, the moved
 * timeline record and the new durable state go into one fsynced batch; only then does
 * `durableOffset` move, and only that offset is ever acknowledged to the master.
 */
export class StreamWriter {
  private readonly pending: SegmentBuilder;
  /** The key index of the pending entries, or null when the store keeps none. */
  private readonly index: KeyIndexBuilder | null;
  /** Writes and bytes per minute of the pending entries, for `rf info` (minutes.ts). */
  private readonly minutes: MinuteTally;
  private pendingWrites = 0;
  private pendingChatter = 0;
  /** Command state after every appended entry (committed or not). */
  private readonly live: CommandState;
  /** Command state before the first pending entry. */
  private committed: { db: number; multiAt: number | null };
  private nextOffset: number;
  private lastTime: number;
  private flushing: Promise<void> = Promise.resolve();
  private readonly windows: WindowTracker;

  constructor(
    private readonly store: Store,
    readonly source: string,
    private timeline: Timeline,
    private state: DurableState,
    private readonly options: WriterOptions,
  ) {
    this.live = new CommandState(state.db, state.multiAt);
    this.committed = { db: state.db, multiAt: state.multiAt };
    this.nextOffset = state.durableOffset + 1;
    this.pending = new SegmentBuilder(this.capacity());
    this.index = options.keyIndex === false ? null : new KeyIndexBuilder();
    this.minutes = new MinuteTally(store, source, timeline.id);
    this.lastTime = state.lastTime;
    this.windows = new WindowTracker(timeline.id, options.lastWindow);
    this.followReplids();
  }

  get durableOffset(): number {
    return this.state.durableOffset;
  }

  /** Capture time of the last durable entry. */
  get durableTime(): number {
    return this.state.lastTime;
  }

  /** The last offset appended, durable or not. */
  get receivedOffset(): number {
    return this.nextOffset - 1;
  }

  get bufferedBytes(): number {
    return this.pending.bytes;
  }

  get timelineId(): number {
    return this.timeline.id;
  }

  get replid(): string {
    return this.state.replid;
  }

  /**
   * Adds one complete frame. `offset` must be the next offset of the stream: a gap or an
   * overlap here would be a bug in the caller, so it throws a TypeError.
   */
  append(
    offset: number,
    bytes: Buffer,
    args: readonly Buffer[] | { readonly args: readonly Buffer[] },
    now: number,
    known?: Kind,
  ): void {
    if (offset !== this.nextOffset) {
      throw new TypeError(`stream offset ${offset} appended where ${this.nextOffset} was expected`);
    }
    // The capture path passes the kind it read from the name's bytes, and args lazily: only a
    // SELECT needs them.
    const kind = known ?? kindOf(argsOf(args)[0]);
    const time = this.stamp(offset, bytes.length, now, kind);
    this.note(kind, kind === Kind.select ? argsOf(args) : EMPTY, offset);
    // The keys come from the frame itself, not from `args`, which callers may abridge.
    if (kind === Kind.write) this.index?.addArgs(this.live.db, parseArgs(bytes));
    this.minutes.add(time, bytes.length, kind === Kind.write);
    this.pending.add(time, bytes, 0, bytes.length);
    this.pending.settle();
    this.nextOffset = offset + bytes.length;
  }

  /**
   * The capture path's append: the frame the scanner is handing out, of a kind the caller read
   * from its name. Its bytes are copied by the next `settle()`, which must run before the chunk
   * they lie in changes or is let go; allocates nothing but for a SELECT.
   */
  appendFrame(frame: ScannedFrame, now: number, kind: Kind): void {
    const offset = frame.start;
    if (offset !== this.nextOffset) {
      throw new TypeError(`stream offset ${offset} appended where ${this.nextOffset} was expected`);
    }
    const time = this.stamp(offset, frame.length, now, kind);
    this.note(kind, kind === Kind.select ? frame.args() : EMPTY, offset);
    if (kind === Kind.write) this.index?.addFrame(this.live.db, frame);
    this.minutes.add(time, frame.length, kind === Kind.write);
    this.pending.add(time, frame.buf, frame.pos, frame.length);
    this.nextOffset = offset + frame.length;
  }

  /**
   * An entry's stored time: when it arrived, or earlier when the master's offset clock shows it
   * had run by then (a write buffered by the master, or by a stalled rf, arrives late). Never
   * earlier than the entry before, so the time index stays ordered even if the wall clock steps
   * back. An entry whose time is known only within more than a live capture's margin goes into
   * an imprecise window.
   */
  private stamp(offset: number, length: number, now: number, kind: Kind): number {
    const clock = this.options.clock;
    let time = now;
    let lower = Number.NEGATIVE_INFINITY;
    if (clock !== undefined) {
      const upper = clock.upperAt(offset);
      if (upper < time) time = upper;
      lower = clock.lowerAt(offset);
    }
    if (time < this.lastTime) time = this.lastTime;
    this.lastTime = time;
    this.windows.note(offset, length, time, lower, kind === Kind.write);
    return time;
  }

  private followReplids(): void {
    this.options.clock?.follow(this.timeline.replids.map((r) => r.replid));
  }

  /** Copies the bytes of the frames `appendFrame` took since the last call. */
  settle(): void {
    this.pending.settle();
  }

  private note(kind: Kind, args: readonly Buffer[], offset: number): void {
    this.live.applyKind(kind, args, offset);
    if (kind === Kind.write) this.pendingWrites++;
    else if (kind === Kind.chatter || kind === Kind.publish) this.pendingChatter++;
  }

  /** Room for a full segment and the frames that arrive while it commits. */
  private capacity(): number {
    return Math.ceil(this.options.maxSegmentBytes * 1.25);
  }

  /** True once the buffered entries should be sealed into a segment without waiting. */
  get full(): boolean {
    return this.pending.bytes >= this.options.maxSegmentBytes;
  }

  /** Notes a `+CONTINUE <newreplid>`: the timeline goes on under the new replid. */
  switchReplid(replid: string): void {
    if (replid === this.state.replid) return;
    this.state = { ...this.state, replid };
    this.timeline = {
      ...this.timeline,
      replid,
      replids: [...this.timeline.replids, { replid, from: this.nextOffset }],
    };
    this.followReplids();
    this.options.log.info(
      { replid, offset: this.nextOffset },
      'master switched replid; timeline continues',
    );
  }

  /** Commits what is buffered. Calls are serialized; the promise settles once it is durable. */
  flush(): Promise<void> {
    this.flushing = this.flushing.then(() => this.commit());
    return this.flushing;
  }

  private async commit(): Promise<void> {
    const seg = this.pending;
    const replidChanged = this.timeline.replid !== this.state.replid;
    if (seg.count === 0) {
      if (replidChanged) await this.store.batch(this.stateOps());
      return;
    }
    // Taken in the same tick as `pending`: the live state is the state after exactly these entries.
    const after = { db: this.live.db, multiAt: this.live.multiAt };
    const writes = this.pendingWrites;
    const chatter = this.pendingChatter;
    const bytes = seg.bytes;
    const start = this.nextOffset - bytes;
    this.pendingWrites = 0;
    this.pendingChatter = 0;

    // Everything up to the batch runs in this tick, so the builder is read and reset before any
    // other entry arrives. `data` lies in the builder's buffer, which the next commit writes
    // into: commits run one after the other, and nothing keeps it past this batch.
    const data = seg.encode();
    const windows = this.windows.take();
    const index = this.index?.seal();
    const minutes = this.minutes.take();
    const end = start + bytes - 1;
    const meta: SegmentMeta = {
      timeline: this.timeline.id,
      start,
      end,
      firstTime: seg.firstTime,
      lastTime: seg.lastTime,
      count: seg.count,
      writes,
      chatter,
      crc: segmentChecksum(data),
      db: this.committed.db,
      multiAt: this.committed.multiAt,
    };
    const src = this.source;
    const tl = this.timeline.id;
    const nextTimeline: Timeline = {
      ...this.timeline,
      durableOffset: end,
      lastTime: seg.lastTime,
      segments: this.timeline.segments + 1,
      bytes: this.timeline.bytes + bytes,
    };
    const nextState: DurableState = {
      ...this.state,
      durableOffset: end,
      db: after.db,
      multiAt: after.multiAt,
      lastTime: seg.lastTime,
    };
    seg.reset();
    const ops: BatchOp[] = [
      { type: 'put', key: keys.segment(src, tl, meta.start), value: json.encode(meta) },
      { type: 'put', key: keys.data(src, tl, meta.start), value: data },
      { type: 'put', key: keys.time(src, tl, meta.lastTime, meta.start), value: Buffer.alloc(0) },
      { type: 'put', key: keys.timeline(src, tl), value: json.encode(nextTimeline) },
      { type: 'put', key: keys.state(src), value: json.encode(nextState) },
      ...windows.map((w) => windowOp(src, w)),
    ];
    if (index !== undefined) {
      ops.push({ type: 'put', key: keys.keyIndex(src, tl, meta.start), value: index });
    }
    const counts = await this.minutes.ops(minutes, start);
    ops.push(...counts.ops);
    const extra = this.options.withCommit?.();
    if (extra !== undefined) ops.push(...extra);
    await this.store.batch(ops);
    this.minutes.committed(counts.last);
    this.timeline = nextTimeline;
    this.state = nextState;
    this.committed = { db: after.db, multiAt: after.multiAt };
    this.options.onCommit?.(meta);
  }

  private stateOps(): BatchOp[] {
    return [
      {
        type: 'put',
        key: keys.timeline(this.source, this.timeline.id),
        value: json.encode(this.timeline),
      },
      { type: 'put', key: keys.state(this.source), value: json.encode(this.state) },
    ];
  }
}

const EMPTY: readonly Buffer[] = [];

/** A frame (whose args are made on demand) or the args themselves. */
function argsOf(args: readonly Buffer[] | { readonly args: readonly Buffer[] }): readonly Buffer[] {
  return 'args' in args ? args.args : args;
}
