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

/**
 * A segment being filled: frames are copied into one growing buffer as they arrive, with their
 * times and lengths in plain number arrays, so a buffered frame costs no object of its own (and
 * the socket chunks it came in are not kept alive until the commit).
 */
export class SegmentBuilder {
  private payload: Buffer;
  private used = 0;
  private readonly times: number[] = [];
  private readonly lengths: number[] = [];

  constructor(capacity: number) {
    this.payload = Buffer.allocUnsafe(Math.max(capacity, 4096));
  }

  get count(): number {
    return this.times.length;
  }

  get bytes(): number {
    return this.used;
  }

  get firstTime(): number {
    return this.times[0] ?? Number.NaN;
  }

  get lastTime(): number {
    return this.times[this.times.length - 1] ?? Number.NaN;
  }

  add(time: number, frame: Buffer): void {
    if (this.used + frame.length > this.payload.length) {
      const grown = Buffer.allocUnsafe(Math.max(this.payload.length * 2, this.used + frame.length));
      this.payload.copy(grown, 0, 0, this.used);
      this.payload = grown;
    }
    frame.copy(this.payload, this.used);
    this.used += frame.length;
    this.times.push(time);
    this.lengths.push(frame.length);
  }

  /** The stored form, the same as encodeSegment's. */
  encode(): Buffer {
    const count = this.times.length;
    const first = this.times[0];
    if (first === undefined) throw new TypeError('a segment holds at least one entry');
    const out = Buffer.allocUnsafe(HEADER + count * ROW + this.used);
    out.writeUInt8(VERSION, 0);
    out.writeUInt32LE(count, 1);
    out.writeDoubleLE(first, 5);
    let row = HEADER;
    for (let i = 0; i < count; i++) {
      out.writeUInt32LE(this.times[i]! - first, row);
      out.writeUInt32LE(this.lengths[i]!, row + 4);
      row += ROW;
    }
    this.payload.copy(out, row, 0, this.used);
    return out;
  }
}

export function segmentChecksum(data: Uint8Array): number {
  return crc32(data);
}

export interface DecodedSegment {
  entries: Entry[];
  payloadBytes: number;
}

/** Decodes and checks one segment value against its meta; any mismatch is RF_CHECKSUM or RF_CORRUPT. */
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

function checkSegment(data: Buffer, meta: SegmentMeta, where: string): void {
  const actual = segmentChecksum(data);
  if (actual !== meta.crc) {
    throw new RfError('RF_CHECKSUM', `segment ${where} does not match its checksum`, {
      details: { segment: where, expected: meta.crc, actual, start: meta.start, end: meta.end },
      hint: 'run `rf verify` to list every damaged part of the archive',
    });
  }
}

export function decodeSegment(data: Buffer, meta: SegmentMeta, where: string): DecodedSegment {
  checkSegment(data, meta, where);
  const corrupt = (why: string) =>
    new RfError('RF_CORRUPT', `segment ${where} is malformed: ${why}`, {
      details: { segment: where, start: meta.start, end: meta.end },
      hint: 'run `rf verify` to list every damaged part of the archive',
    });
  if (data.length < HEADER || data.readUInt8(0) !== VERSION) throw corrupt('unknown version');
  const count = data.readUInt32LE(1);
  const firstTime = data.readDoubleLE(5);
  if (count !== meta.count || HEADER + count * ROW > data.length) throw corrupt('entry count');
  const entries: Entry[] = new Array(count);
  let pos = HEADER + count * ROW;
  let offset = meta.start;
  for (let i = 0; i < count; i++) {
    const row = HEADER + i * ROW;
    const length = data.readUInt32LE(row + 4);
    if (pos + length > data.length) throw corrupt('entry runs past the end');
    entries[i] = {
      offset,
      time: firstTime + data.readUInt32LE(row),
      bytes: data.subarray(pos, pos + length),
    };
    pos += length;
    offset += length;
  }
  if (pos !== data.length) throw corrupt('trailing bytes');
  if (offset - 1 !== meta.end) throw corrupt(`entries end at ${offset - 1}, meta says ${meta.end}`);
  return { entries, payloadBytes: offset - meta.start };
}
