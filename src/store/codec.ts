import { endianness } from 'node:os';
import { crc32 } from 'node:zlib';
import { RfError } from '../errors.js';
import type { Entry, SegmentMeta } from './types.js';

/**
 * Segment data: the stream bytes exactly as the master sent them, preceded by a small table
 * of (capture-time delta, length) per entry. Offsets are implicit: entries are contiguous, so
 * entry i starts at meta.start + sum of the lengths before it.
 *
 *   u8 version | u32 count | f64 firstTime | count x (u32 timeDelta, u32 length) | frames
 */
const VERSION = 1;
const HEADER = 1 + 4 + 8;
const ROW = 8;

export function encodeSegment(entries: readonly Entry[]): Buffer {
  const first = entries[0];
  if (first === undefined) throw new TypeError('a segment holds at least one entry');
  let payload = 0;
  for (const e of entries) payload += e.bytes.length;
  const out = Buffer.allocUnsafe(HEADER + entries.length * ROW + payload);
  out.writeUInt8(VERSION, 0);
  out.writeUInt32LE(entries.length, 1);
  out.writeDoubleLE(first.time, 5);
  let row = HEADER;
  let pos = HEADER + entries.length * ROW;
  for (const e of entries) {
    out.writeUInt32LE(e.time - first.time, row);
    out.writeUInt32LE(e.bytes.length, row + 4);
    row += ROW;
    pos += e.bytes.copy(out, pos);
  }
  return out;
}

/** Room for the table of 4096 entries, as (time delta, length) pairs. */
const ROWS = 2 * 4096;
/** The table rows can be copied as they lie in memory only on a little-endian machine. */
const NATIVE_LE = endianness() === 'LE';

/**
 * A segment being filled, reused from one segment to the next. Frames cost no object of their
 * own: their (time delta, length) rows go into a typed array laid out as the stored table, and
 * their bytes are copied in runs: consecutive frames of one socket chunk are contiguous, so
 * `add` only notes where they lie and `settle` copies each run once.
 */
export class SegmentBuilder {
  private payload: Buffer;
  /** Where `encode` writes the stored form. */
  private out: Buffer = Buffer.alloc(0);
  private used = 0;
  private rows = new Uint32Array(ROWS);
  private entries = 0;
  private first = Number.NaN;
  private last = Number.NaN;
  /** Bytes [runFrom, runTo) of runBuf are entries added but not copied yet. */
  private runBuf: Buffer | null = null;
  private runFrom = 0;
  private runTo = 0;

  private readonly capacity: number;

  constructor(capacity: number) {
    this.capacity = Math.max(capacity, 4096);
    this.payload = Buffer.allocUnsafe(this.capacity);
  }

  get count(): number {
    return this.entries;
  }

  get bytes(): number {
    return this.used + (this.runTo - this.runFrom);
  }

  get firstTime(): number {
    return this.first;
  }

  get lastTime(): number {
    return this.last;
  }

  /**
   * Adds an entry whose bytes are `buf[pos, pos + length)`. They are read when `settle` runs (or
   * `encode`): `buf` must not change until then.
   */
  add(time: number, buf: Buffer, pos: number, length: number): void {
    const e = this.entries;
    if (e === 0) this.first = time;
    if (2 * e + 2 > this.rows.length) {
      const grown = new Uint32Array(this.rows.length * 2);
      grown.set(this.rows);
      this.rows = grown;
    }
    this.rows[2 * e] = time - this.first;
    this.rows[2 * e + 1] = length;
    this.entries = e + 1;
    this.last = time;
    if (buf === this.runBuf && pos === this.runTo) {
      this.runTo += length;
      return;
    }
    this.settle();
    this.runBuf = buf;
    this.runFrom = pos;
    this.runTo = pos + length;
  }

  /** Copies the bytes of the entries added since the last call. */
  settle(): void {
    const buf = this.runBuf;
    if (buf === null) return;
    const length = this.runTo - this.runFrom;
    if (this.used + length > this.payload.length) {
      const grown = Buffer.allocUnsafe(Math.max(this.payload.length * 2, this.used + length));
      this.payload.copy(grown, 0, 0, this.used);
      this.payload = grown;
    }
    buf.copy(this.payload, this.used, this.runFrom, this.runTo);
    this.used += length;
    this.runBuf = null;
    this.runFrom = 0;
    this.runTo = 0;
  }

  /**
   * The stored form, the same as encodeSegment's, in a buffer the builder keeps and writes the
   * next segment into: it is valid until the next call. A fresh megabyte per segment would be
   * garbage the collector runs for (V8 counts a Buffer's memory towards its next collection).
   */
  encode(): Buffer {
    const count = this.entries;
    if (count === 0) throw new TypeError('a segment holds at least one entry');
    this.settle();
    const size = HEADER + count * ROW + this.used;
    if (this.out.length < size) this.out = Buffer.allocUnsafe(size);
    const out = this.out.subarray(0, size);
    out.writeUInt8(VERSION, 0);
    out.writeUInt32LE(count, 1);
    out.writeDoubleLE(this.first, 5);
    if (NATIVE_LE) {
      out.set(new Uint8Array(this.rows.buffer, 0, count * ROW), HEADER);
    } else {
      for (let i = 0; i < 2 * count; i++) out.writeUInt32LE(this.rows[i]!, HEADER + 4 * i);
    }
    this.payload.copy(out, HEADER + count * ROW, 0, this.used);
    return out;
  }

  /** Empties the builder for the next segment, keeping its buffers. */
  /**
   * Empties the builder for the next segment, keeping its buffers, but for one a very large
   * entry (a RESTORE payload, say) grew: that goes, rather than stay allocated for good.
   */
  reset(): void {
    this.settle();
    this.used = 0;
    this.entries = 0;
    this.first = Number.NaN;
    this.last = Number.NaN;
    if (this.payload.length > 4 * this.capacity) this.payload = Buffer.allocUnsafe(this.capacity);
    if (this.out.length > 4 * this.capacity) this.out = Buffer.alloc(0);
    if (this.rows.length > 4 * ROWS) this.rows = new Uint32Array(ROWS);
  }
}

export function segmentChecksum(data: Uint8Array): number {
  return crc32(data);
}

export interface DecodedSegment {
  entries: Entry[];
  payloadBytes: number;
}

/**
 * A checked segment's frames as one slice, all entries back to back, without decoding them: what
 * a restore writes for a segment it replays whole.
 */
export function segmentPayload(data: Buffer, meta: SegmentMeta, where: string): Buffer {
  checkSegment(data, meta, where);
  const payload = data.subarray(HEADER + meta.count * ROW);
  if (payload.length !== meta.end - meta.start + 1) {
    throw new RfError(
      'RF_CORRUPT',
      `segment ${where} is malformed: its frames are ${payload.length} bytes, its offsets ${meta.end - meta.start + 1}`,
      {
        details: { segment: where, start: meta.start, end: meta.end },
        hint: 'run `rf verify` to list every damaged part of the archive',
      },
    );
  }
  return payload;
}

/**
 * The little-endian u32 at `at`, which the caller has checked lies inside `data`: read byte by
 * byte, as readUInt32LE does after its own bounds check, which costs more than the read when it
 * runs for every row of every segment a reader walks.
 */
function u32At(data: Buffer, at: number): number {
  return (data[at]! | (data[at + 1]! << 8) | (data[at + 2]! << 16)) + data[at + 3]! * 0x1000000;
}

function checkSegment(data: Buffer, meta: SegmentMeta, where: string): void {
  const actual = segmentChecksum(data);
  if (actual !== meta.crc) {
    throw new RfError('RF_CHECKSUM', `segment ${where} does not match its checksum`, {
      details: { segment: where, expected: meta.crc, actual, start: meta.start, end: meta.end },
      hint: 'run `rf verify` to list every damaged part of the archive',
    });
  }
}

/** Checks one segment value against its meta: RF_CHECKSUM or RF_CORRUPT on any mismatch. */
function checkTable(
  data: Buffer,
  meta: SegmentMeta,
  where: string,
): { count: number; firstTime: number } {
  checkSegment(data, meta, where);
  const corrupt = (why: string) =>
    new RfError('RF_CORRUPT', `segment ${where} is malformed: ${why}`, {
      details: { segment: where, start: meta.start, end: meta.end },
      hint: 'run `rf verify` to list every damaged part of the archive',
    });
  if (data.length < HEADER || data.readUInt8(0) !== VERSION) throw corrupt('unknown version');
  const count = data.readUInt32LE(1);
  if (count !== meta.count || HEADER + count * ROW > data.length) throw corrupt('entry count');
  let pos = HEADER + count * ROW;
  for (let i = 0; i < count; i++) {
    pos += u32At(data, HEADER + i * ROW + 4);
    if (pos > data.length) throw corrupt('entry runs past the end');
  }
  if (pos !== data.length) throw corrupt('trailing bytes');
  const end = meta.start + (pos - HEADER - count * ROW) - 1;
  if (end !== meta.end) throw corrupt(`entries end at ${end}, meta says ${meta.end}`);
  return { count, firstTime: data.readDoubleLE(5) };
}

/** Decodes and checks one segment value against its meta; any mismatch is RF_CHECKSUM or RF_CORRUPT. */
export function decodeSegment(data: Buffer, meta: SegmentMeta, where: string): DecodedSegment {
  const entries: Entry[] = new Array(meta.count);
  let i = 0;
  forEachEntry(data, meta, where, (offset, time, pos, length) => {
    entries[i++] = { offset, time, bytes: data.subarray(pos, pos + length) };
  });
  return { entries, payloadBytes: meta.end - meta.start + 1 };
}

/**
 * Checks one segment as decodeSegment does, then hands `fn` each entry's offset, capture time
 * and place in `data`, making nothing per entry: for readers that go through every write. A
 * reader that has seen all it needs returns false, and the entries after are not visited.
 */
export function forEachEntry(
  data: Buffer,
  meta: SegmentMeta,
  where: string,
  fn: (offset: number, time: number, pos: number, length: number) => boolean | undefined,
): void {
  const { count, firstTime } = checkTable(data, meta, where);
  let pos = HEADER + count * ROW;
  let offset = meta.start;
  for (let i = 0; i < count; i++) {
    const row = HEADER + i * ROW;
    const length = u32At(data, row + 4);
    if (fn(offset, firstTime + u32At(data, row), pos, length) === false) return;
    pos += length;
    offset += length;
  }
}

/** Checks one segment as forEachEntry does, and visits none of its entries. */
export function checkSegmentData(data: Buffer, meta: SegmentMeta, where: string): void {
  checkTable(data, meta, where);
}
