import type { ImpreciseWindow } from '../bounds/windows.js';
import { RfError } from '../errors.js';
import type { CommandKeySpecs } from '../resp/key-specs.js';
import { type DecodedSegment, decodeSegment, segmentPayload } from './codec.js';
import { keys, prefixEnd, startFromTimeKey } from './keys.js';
import { decodeHour, type MinuteCount } from './minutes.js';
import { onlyInRepo, readOffload, segmentOffloaded } from './offload.js';
import { json, type KvReader, readRecord, readRecords } from './store.js';
import type {
  BaseMeta,
  DurableState,
  SeenRecord,
  SegmentMeta,
  SourceRecord,
  Timeline,
} from './types.js';

/** Read-side queries over the archive. Knows the key layout; not where the bytes live. */
export class Archive {
  constructor(readonly kv: KvReader) {}

  get dir(): string {
    return this.kv.dir;
  }

  async sources(): Promise<SourceRecord[]> {
    const out: SourceRecord[] = [];
    const prefix = keys.sourcesPrefix;
    for await (const [, v] of this.kv.entries({ gte: prefix, lt: prefixEnd(prefix) })) {
      out.push(json.decode<SourceRecord>(v));
    }
    return out;
  }

  async source(name: string): Promise<SourceRecord | undefined> {
    return this.getJson<SourceRecord>(keys.source(name));
  }

  /** The source's record; RF_UNKNOWN_SOURCE, naming the sources there are, when it has none. */
  async requireSource(name: string): Promise<SourceRecord> {
    const record = await this.source(name);
    if (record !== undefined) return record;
    const known = (await this.sources()).map((s) => s.name);
    throw new RfError('RF_UNKNOWN_SOURCE', `the store holds no source named ${name}`, {
      details: { source: name, known },
      hint:
        known.length > 0
          ? `pass --name with one of: ${known.join(', ')}`
          : 'nothing is archived yet: run `rf listen` first',
    });
  }

  async state(src: string): Promise<DurableState | undefined> {
    return this.getJson<DurableState>(keys.state(src));
  }

  async timelines(src: string): Promise<Timeline[]> {
    return this.collect<Timeline>(keys.timelinePrefix(src));
  }

  async seen(src: string): Promise<SeenRecord | undefined> {
    return this.getJson<SeenRecord>(keys.seen(src));
  }

  /** The master's key specs of its write commands, as rf listen last read them (COMMAND). */
  async commandSpecs(src: string): Promise<CommandKeySpecs | undefined> {
    return this.getJson<CommandKeySpecs>(keys.commandSpecs(src));
  }

  /** The imprecise windows (entries received late), by timeline and offset. */
  async imprecise(src: string, timeline?: number): Promise<ImpreciseWindow[]> {
    return this.collect<ImpreciseWindow>(keys.imprecisePrefix(src, timeline));
  }

  /** A timeline's last imprecise window: one reverse seek. */
  async lastImprecise(src: string, timeline: number): Promise<ImpreciseWindow | undefined> {
    const prefix = keys.imprecisePrefix(src, timeline);
    for await (const [, v] of this.kv.entries({
      gte: prefix,
      lt: prefixEnd(prefix),
      reverse: true,
      limit: 1,
    }))
      return json.decode<ImpreciseWindow>(v);
    return undefined;
  }

  /** Where retention has pruned a timeline to: its first segment starts right after this offset. */
  async prunedBefore(src: string, timeline: number): Promise<number | undefined> {
    return this.getJson<number>(keys.pruned(src, timeline));
  }

  async bases(src: string, timeline?: number): Promise<BaseMeta[]> {
    return this.collect<BaseMeta>(keys.basePrefix(src, timeline));
  }

  /** Segment metas of a timeline in offset order, from the one holding `fromOffset` on. */
  async *segments(src: string, tl: number, fromOffset?: number): AsyncIterable<SegmentMeta> {
    const prefix = keys.segmentPrefix(src, tl);
    let gte = prefix;
    if (fromOffset !== undefined) {
      const first = await this.segmentAtOffset(src, tl, fromOffset);
      gte =
        first === undefined
          ? keys.segment(src, tl, fromOffset)
          : keys.segment(src, tl, first.start);
    }
    for await (const [, v] of this.kv.entries({ gte, lt: prefixEnd(prefix) })) {
      yield json.decode<SegmentMeta>(v);
    }
  }

  /** The segment holding `offset`, found with one reverse seek. */
  async segmentAtOffset(src: string, tl: number, offset: number): Promise<SegmentMeta | undefined> {
    const prefix = keys.segmentPrefix(src, tl);
    for await (const [, v] of this.kv.entries({
      gte: prefix,
      lte: keys.segment(src, tl, offset),
      reverse: true,
      limit: 1,
    })) {
      const meta = json.decode<SegmentMeta>(v);
      return offset <= meta.end ? meta : undefined;
    }
    return undefined;
  }

  /** The first segment whose last entry was captured at or after `t`: one seek in the time index. */
  async segmentAtTime(src: string, tl: number, t: number): Promise<SegmentMeta | undefined> {
    const prefix = keys.timePrefix(src, tl);
    for await (const [k] of this.kv.entries({
      gte: keys.timeFrom(src, tl, t),
      lt: prefixEnd(prefix),
      limit: 1,
    })) {
      return this.getJson<SegmentMeta>(keys.segment(src, tl, startFromTimeKey(k)));
    }
    return undefined;
  }

  /** The last segment of a timeline whose first entry was captured at or before `t`. */
  async segmentBeforeTime(src: string, tl: number, t: number): Promise<SegmentMeta | undefined> {
    const at = await this.segmentAtTime(src, tl, t);
    if (at !== undefined && at.firstTime <= t) return at;
    // Every entry of `at` is after t (or there is none): the answer is the segment before it.
    const prefix = keys.segmentPrefix(src, tl);
    const lt = at === undefined ? prefixEnd(prefix) : keys.segment(src, tl, at.start);
    for await (const [, v] of this.kv.entries({ gte: prefix, lt, reverse: true, limit: 1 })) {
      return json.decode<SegmentMeta>(v);
    }
    return undefined;
  }

  async readSegment(src: string, meta: SegmentMeta): Promise<DecodedSegment> {
    const { data, where } = await this.segmentData(src, meta);
    return decodeSegment(data, meta, where);
  }

  /** A segment's frames, checked, as one slice: no entry is decoded. */
  async readSegmentPayload(src: string, meta: SegmentMeta): Promise<Buffer> {
    const { data, where } = await this.segmentData(src, meta);
    return segmentPayload(data, meta, where);
  }

  /** The first offset of a timeline whose writes are counted by minute (minutes.ts), if any. */
  async countedFrom(src: string, tl: number): Promise<number | undefined> {
    return this.getJson<number>(keys.countedFrom(src, tl));
  }

  /** The minute counts of a timeline from minute `from` to `until` (inclusive), in order. */
  async *minutes(src: string, tl: number, from: number, until: number): AsyncIterable<MinuteCount> {
    const first = Math.floor(Math.max(0, from) / 60);
    const last = Math.floor(Math.max(0, until) / 60);
    const prefix = keys.minutePrefix(src, tl);
    for await (const [k, v] of this.kv.entries({
      gte: keys.minutes(src, tl, first),
      lte: keys.minutes(src, tl, last),
    })) {
      for (const m of decodeHour(Number.parseInt(k.slice(prefix.length), 16), v)) {
        if (m.minute >= from && m.minute <= until) yield m;
      }
    }
  }

  /**
   * The stored key indexes (key-index.ts) of a timeline's segments from offset `from` on, as
   * (segment start, index), unchecked; a segment of an older store has none.
   */
  async *keyIndexes(src: string, tl: number, from: number): AsyncIterable<[number, Buffer]> {
    const prefix = keys.keyIndexPrefix(src, tl);
    for await (const [k, v] of this.kv.entries({
      gte: keys.keyIndex(src, tl, from),
      lt: prefixEnd(prefix),
    })) {
      yield [Number.parseInt(k.slice(prefix.length), 16), v];
    }
  }

  /** A segment's stored value, unchecked, and how to name it in an error: see forEachEntry. */
  async segmentData(src: string, meta: SegmentMeta): Promise<{ data: Buffer; where: string }> {
    const where = `${src}/timeline ${meta.timeline}/offset ${meta.start}`;
    const data = await this.kv.get(keys.data(src, meta.timeline, meta.start));
    if (data === undefined) {
      const offloaded = await readOffload(this.kv, src);
      if (offloaded !== undefined && segmentOffloaded(offloaded, meta.timeline, meta.end))
        throw onlyInRepo(offloaded, src, `segment ${where}`, { start: meta.start, end: meta.end });
      throw new RfError('RF_CORRUPT', `segment ${where} has no data`, {
        details: { source: src, timeline: meta.timeline, start: meta.start, end: meta.end },
        hint: 'run `rf verify` to list every damaged part of the archive',
      });
    }
    return { data, where };
  }

  private getJson<T>(key: string): Promise<T | undefined> {
    return readRecord<T>(this.kv, key);
  }

  private collect<T>(prefix: string): Promise<T[]> {
    return readRecords<T>(this.kv, prefix);
  }
}
