// Over 400 lines: the frame scanner is one resumable state machine over every RESP type (it
// stops at any byte and goes on with the next chunk); its states do not split apart.
import { constants as bufferConstants } from 'node:buffer';
import { RfError } from '../errors.js';

/**
 * A multibulk command as a master propagates it and as an AOF stores it. `start` counts bytes from
 * the first byte pushed into the scanner (plus `startAt`); `bytes` are exactly the frame's raw bytes
 * and `args` are slices of them.
 */
export interface CommandFrame {
  kind: 'command';
  start: number;
  length: number;
  bytes: Buffer;
  /** The bulk strings, as slices of `bytes`; made on first access. */
  readonly args: Buffer[];
  /** Where the first argument (the command name) lies in `bytes`, without making `args`. */
  nameStart: number;
  nameLength: number;
}

/**
 * A command frame whose argument slices are made only when asked for: the capture path reads
 * just the name of most commands, and a slice per argument per command is most of its garbage.
 */
class LazyCommandFrame implements CommandFrame {
  readonly kind = 'command';
  private made: Buffer[] | null = null;

  constructor(
    readonly start: number,
    readonly length: number,
    readonly bytes: Buffer,
    private readonly offsets: number[],
  ) {}

  get nameStart(): number {
    return this.offsets[0] ?? 0;
  }

  get nameLength(): number {
    return this.offsets[1] ?? 0;
  }

  get args(): Buffer[] {
    if (this.made === null) {
      const { offsets, bytes } = this;
      const args: Buffer[] = new Array(offsets.length >> 1);
      for (let k = 0; k < args.length; k++) {
        const from = offsets[2 * k]!;
        args[k] = bytes.subarray(from, from + offsets[2 * k + 1]!);
      }
      this.made = args;
    }
    return this.made;
  }
}

/** An AOF annotation line such as `#TS:1700000000\r\n`; `text` is the line without `#` and CRLF. */
export interface AnnotationFrame {
  kind: 'annotation';
  start: number;
  length: number;
  bytes: Buffer;
  text: string;
}

export type Frame = CommandFrame | AnnotationFrame;

/**
 * The frame `FrameScanner.scan` hands its sink: one object per scanner, refilled for every frame,
 * so scanning allocates nothing per frame. Valid only during the sink's call; positions index
 * `buf`, which may be the pushed chunk or, for a frame that spanned chunks, the scanner's own
 * buffer.
 */
export class ScannedFrame {
  buf: Buffer = Buffer.alloc(0);
  /** Where the frame starts in `buf`. */
  pos = 0;
  length = 0;
  /** Stream position of the frame's first byte. */
  start = 0;
  /** Number of bulk strings. */
  argc = 0;
  /** Where the first bulk string (the command name) lies in `buf`; 0 and 0 when there is none. */
  nameStart = 0;
  nameLength = 0;
  /** The annotation line without `#` and CRLF, or null for a command. */
  text: string | null = null;
  /** @internal (start, length) of each bulk string, relative to `pos`. */
  offsets: Float64Array = new Float64Array(32);

  /** The frame's bytes, as a slice of `buf` (valid as long as `buf` is). */
  bytes(): Buffer {
    return this.buf.subarray(this.pos, this.pos + this.length);
  }

  /** The bulk strings, as slices of `buf`. */
  args(): Buffer[] {
    const out: Buffer[] = new Array(this.argc);
    for (let k = 0; k < this.argc; k++) {
      const from = this.pos + this.offsets[2 * k]!;
      out[k] = this.buf.subarray(from, from + this.offsets[2 * k + 1]!);
    }
    return out;
  }
}

/** Receives each frame as `FrameScanner.scan` completes it, in stream order. */
export type FrameSink = (frame: ScannedFrame) => void;

export interface FrameScannerOptions {
  /** Position of the first byte pushed, e.g. the replication offset or file position it starts at. */
  startAt?: number;
  /**
   * Accept `#…\r\n` lines at frame boundaries (AOF timestamp annotations, aof.c
   * genAofTimestampAnnotationIfNeeded). A replication stream never carries them, so without this
   * option a `#` is a protocol error.
   */
  annotations?: boolean;
  /**
   * Skip bare `\n` bytes between frames: the keep-alive a replica sends its master while it
   * loads a snapshot (replication.c, replicationSendNewlineToMaster). They count toward
   * `position` but yield no frame.
   */
  keepalives?: boolean;
}

const CR = 0x0d;
const LF = 0x0a;
const STAR = 0x2a;
const DOLLAR = 0x24;
const HASH = 0x23;
const MINUS = 0x2d;
const ZERO = 0x30;
const NINE = 0x39;

const INCOMPLETE = -2;
/** Argument table entries kept between frames; a larger table is let go after its frame. */
const OFFSETS_KEPT = 2 * 4096;
/** server.h AOF_ANNOTATION_LINE_MAX_LEN, CRLF included. */
const ANNOTATION_MAX = 1024;
/** More digits than this cannot be a length a Buffer can hold; stop before the number loses precision. */
const MAX_DIGITS = 15;
/** networking.c processMultibulkBuffer rejects a multibulk length above INT_MAX. */
const MAX_ARGC = 2 ** 31 - 1;
/** A frame is handed out as one Buffer, so neither a bulk nor a whole frame may exceed this. */
const MAX_FRAME = bufferConstants.MAX_LENGTH;

/**
 * Splits a replication stream or an AOF into frames, incrementally and without copying in the
 * common case: frames that lie inside one pushed chunk are slices of that chunk. Only a frame that
 * spans chunks is assembled, in a buffer that holds exactly that frame's bytes; parsing resumes
 * where it stopped, so a large frame arriving in many pieces costs linear time.
 *
 * Pushed Buffers are retained by the frames sliced from them: do not modify a Buffer after pushing
 * it (Node's socket and file streams never do).
 *
 * The grammar is the one Redis itself accepts from a master or an AOF (networking.c
 * processMultibulkBuffer, aof.c loadSingleAppendOnlyFile), and slightly stricter: the LF after each
 * CR is checked, and lengths follow string2ll (no sign but `*-1`, no leading zeros). `*0` and `*-1`,
 * which Redis skips, come out as commands with no args so every byte belongs to exactly one frame.
 */
export class FrameScanner {
  private readonly annotations: boolean;
  private readonly keepalives: boolean;
  /** Stream position of the first byte of the frame being parsed. */
  private consumed: number;
  private failure: unknown = null;

  /** Bytes of the frame that spans pushes, or null when no frame is pending. */
  private acc: Buffer | null = null;
  private accLen = 0;

  // Where parsing of the current frame stopped; offsets are relative to the frame's first byte.
  /** Number of bulk strings announced by `*N`, or -1 before that line is read. */
  private argc = -1;
  /** Length announced by the `$len` line whose body is awaited, or -1 when a `$` line is next. */
  private bulkLen = -1;
  /** Start of the first element not yet parsed (a line, or the awaited body). */
  private cursor = 0;
  /** Frame bytes needed before parsing can progress; 0 means "up to the next LF". */
  private need = 0;
  /** The frame handed to sinks; its `offsets` hold (start, length) of each parsed bulk string. */
  private readonly frame = new ScannedFrame();
  /** Bulk strings of the current frame parsed so far. */
  private parsed = 0;
  private annotationText: string | null = null;
  /** Set by readLength: the index just past the line's CRLF. */
  private lineEnd = 0;

  constructor(options: FrameScannerOptions = {}) {
    const startAt = options.startAt ?? 0;
    if (!Number.isSafeInteger(startAt) || startAt < 0) {
      throw new TypeError(`FrameScanner: startAt must be a non-negative integer, got ${startAt}`);
    }
    this.consumed = startAt;
    this.annotations = options.annotations === true;
    this.keepalives = options.keepalives === true;
  }

  /** Start position plus the bytes consumed into complete frames: where the next frame starts. */
  get position(): number {
    return this.consumed;
  }

  /** Bytes held for a frame that is not complete yet. */
  get pendingBytes(): number {
    return this.accLen;
  }

  /**
   * Returns the frames this chunk completes, in stream order. A protocol error throws instead, and
   * the frames the same chunk completed before the bad byte are not returned: the error's
   * `frameStart` is where the valid data ends, so a caller that wants that prefix feeds the bytes
   * before it to a new scanner. After an error the scanner stays failed: every push rethrows it.
   */
  push(chunk: Buffer): Frame[] {
    const frames: Frame[] = [];
    this.scan(chunk, (f) => {
      const bytes = f.bytes();
      if (f.text !== null) {
        frames.push({ kind: 'annotation', start: f.start, length: f.length, bytes, text: f.text });
        return;
      }
      const offsets: number[] = new Array(2 * f.argc);
      for (let k = 0; k < offsets.length; k++) offsets[k] = f.offsets[k]!;
      frames.push(new LazyCommandFrame(f.start, f.length, bytes, offsets));
    });
    return frames;
  }

  /**
   * Like `push`, but hands each frame to `sink` as it completes, as one reused object: the capture
   * path, which must not allocate per command. The frames before a bad byte have been handed to
   * the sink when the protocol error is thrown; an error the sink throws fails the scanner too.
   */
  scan(chunk: Buffer, sink: FrameSink): void {
    if (this.failure !== null) throw this.failure;
    try {
      let pos = this.acc === null ? 0 : this.continuePending(chunk, sink);
      while (pos < chunk.length) {
        if (this.keepalives && chunk[pos] === LF) {
          pos++;
          this.consumed++;
          continue;
        }
        const length = this.advance(chunk, pos);
        if (length === INCOMPLETE) {
          this.hold(chunk, pos);
          break;
        }
        this.emit(chunk, pos, length, sink);
        pos += length;
      }
    } catch (err) {
      this.failure = err;
      throw err;
    }
  }

  /**
   * Feeds the pending frame only the bytes it can use: up to the next LF while a line is awaited,
   * exactly the rest of the body while a bulk string is. The frame therefore ends exactly at the
   * end of `acc`, and the rest of the chunk goes through the zero-copy path.
   */
  private continuePending(chunk: Buffer, sink: FrameSink): number {
    let pos = 0;
    while (pos < chunk.length) {
      let take: number;
      if (this.need > this.accLen) {
        take = Math.min(this.need - this.accLen, chunk.length - pos);
      } else {
        const lf = chunk.indexOf(LF, pos);
        take = (lf === -1 ? chunk.length : lf + 1) - pos;
      }
      this.append(chunk, pos, take);
      pos += take;
      if (this.accLen < this.need) break;
      const view = this.acc!.subarray(0, this.accLen);
      const length = this.advance(view, 0);
      if (length !== INCOMPLETE) {
        this.acc = null;
        this.accLen = 0;
        this.emit(view, 0, length, sink);
        break;
      }
    }
    return pos;
  }

  private hold(chunk: Buffer, pos: number): void {
    const bytes = chunk.length - pos;
    this.acc = Buffer.allocUnsafe(this.grownCapacity(bytes, 0));
    chunk.copy(this.acc, 0, pos);
    this.accLen = bytes;
  }

  private append(chunk: Buffer, pos: number, take: number): void {
    let acc = this.acc!;
    const required = this.accLen + take;
    if (required > acc.length) {
      const grown = Buffer.allocUnsafe(this.grownCapacity(required, acc.length));
      acc.copy(grown, 0, 0, this.accLen);
      acc = grown;
      this.acc = grown;
    }
    chunk.copy(acc, this.accLen, pos, pos + take);
    this.accLen = required;
  }

  /**
   * Doubling keeps a frame of many small args linear; never growing past a known body end keeps a
   * single large value (a RESTORE payload) in a buffer of its exact size, and never allocating for
   * a length not yet received keeps a corrupt `$999999999` from exhausting memory.
   */
  private grownCapacity(required: number, current: number): number {
    if (required > MAX_FRAME) {
      throw this.error(`frame larger than ${MAX_FRAME} bytes`, this.consumed);
    }
    let capacity = Math.max(required, current * 2, 256);
    if (this.need >= required) capacity = Math.min(capacity, this.need);
    return Math.min(capacity, MAX_FRAME);
  }

  /**
   * Parses the frame starting at `buf[base]` from where the last call stopped. Returns the frame's
   * length once complete, or INCOMPLETE with `need` set.
   */
  private advance(buf: Buffer, base: number): number {
    let i = base + this.cursor;
    if (this.argc < 0) {
      const first = buf[i];
      if (first === HASH && this.annotations) return this.annotation(buf, base);
      if (first !== STAR) {
        throw this.error(
          `expected '*' at the start of a frame, got ${describeByte(first)}`,
          this.consumed,
        );
      }
      const argc = this.readLength(buf, base, i + 1, true);
      if (argc === INCOMPLETE) {
        this.need = 0;
        return INCOMPLETE;
      }
      if (argc > MAX_ARGC) {
        throw this.error(`multibulk length ${argc} is above ${MAX_ARGC}`, this.consumed);
      }
      this.argc = Math.max(argc, 0);
      i = this.lineEnd;
      this.cursor = i - base;
    }
    const end = buf.length;
    for (;;) {
      if (this.bulkLen < 0) {
        if (this.parsed === this.argc) return i - base;
        if (i >= end) {
          this.need = 0;
          return INCOMPLETE;
        }
        if (buf[i] !== DOLLAR) {
          throw this.error(
            `expected '$' before argument ${this.parsed}, got ${describeByte(buf[i])}`,
            this.consumed + (i - base),
          );
        }
        const bulkLen = this.readLength(buf, base, i + 1, false);
        if (bulkLen === INCOMPLETE) {
          this.need = 0;
          return INCOMPLETE;
        }
        if (bulkLen > MAX_FRAME) {
          throw this.error(
            `bulk length ${bulkLen} is above ${MAX_FRAME}`,
            this.consumed + (i - base),
          );
        }
        i = this.lineEnd;
        this.bulkLen = bulkLen;
        this.cursor = i - base;
      }
      const bodyEnd = i + this.bulkLen + 2;
      if (bodyEnd > end) {
        this.need = bodyEnd - base;
        return INCOMPLETE;
      }
      if (buf[bodyEnd - 2] !== CR || buf[bodyEnd - 1] !== LF) {
        throw this.error(
          `bulk string of ${this.bulkLen} bytes is not followed by CRLF`,
          this.consumed + (bodyEnd - 2 - base),
        );
      }
      this.record(i - base, this.bulkLen);
      this.bulkLen = -1;
      i = bodyEnd;
      this.cursor = i - base;
    }
  }

  /**
   * Reads the decimal length after a `*` or `$` at `buf[at]`, through its CRLF, and leaves the
   * index after the LF in `lineEnd`. Returns INCOMPLETE when the line is not all there yet.
   */
  private readLength(buf: Buffer, base: number, at: number, allowNull: boolean): number {
    const end = buf.length;
    let j = at;
    const negative = j < end && buf[j] === MINUS;
    if (negative) j++;
    const digits = j;
    let n = 0;
    while (j < end) {
      const c = buf[j]!;
      if (c < ZERO || c > NINE) break;
      if (j - digits === MAX_DIGITS) {
        throw this.error('length has too many digits', this.consumed + (j - base));
      }
      n = n * 10 + (c - ZERO);
      j++;
    }
    if (j >= end) return INCOMPLETE;
    if (buf[j] !== CR) {
      throw this.error(
        `expected a digit or CR in a length, got ${describeByte(buf[j])}`,
        this.consumed + (j - base),
      );
    }
    if (j + 1 >= end) return INCOMPLETE;
    if (buf[j + 1] !== LF) {
      throw this.error(
        `expected LF after CR, got ${describeByte(buf[j + 1])}`,
        this.consumed + (j + 1 - base),
      );
    }
    const count = j - digits;
    if (count === 0 || (count > 1 && buf[digits] === ZERO)) {
      throw this.error('malformed length', this.consumed + (at - base));
    }
    if (negative && !(allowNull && n === 1)) {
      throw this.error(`negative length -${n}`, this.consumed + (at - base));
    }
    this.lineEnd = j + 2;
    return negative ? -1 : n;
  }

  private annotation(buf: Buffer, base: number): number {
    const lf = buf.indexOf(LF, base + 1);
    const length = lf + 1 - base;
    if (lf === -1 || length > ANNOTATION_MAX) {
      if (lf === -1 && buf.length - base < ANNOTATION_MAX) {
        this.need = 0;
        return INCOMPLETE;
      }
      throw this.error(`annotation line longer than ${ANNOTATION_MAX} bytes`, this.consumed);
    }
    if (lf - 1 <= base || buf[lf - 1] !== CR) {
      throw this.error('annotation line does not end with CRLF', this.consumed + (lf - base));
    }
    this.annotationText = buf.toString('latin1', base + 1, lf - 1);
    return length;
  }

  private record(from: number, length: number): void {
    const f = this.frame;
    const k = 2 * this.parsed;
    if (k + 2 > f.offsets.length) {
      const grown = new Float64Array(f.offsets.length * 2);
      grown.set(f.offsets);
      f.offsets = grown;
    }
    f.offsets[k] = from;
    f.offsets[k + 1] = length;
    this.parsed++;
  }

  private emit(buf: Buffer, base: number, length: number, sink: FrameSink): void {
    const f = this.frame;
    f.buf = buf;
    f.pos = base;
    f.length = length;
    f.start = this.consumed;
    f.text = this.annotationText;
    f.argc = this.parsed;
    f.nameStart = this.parsed > 0 ? base + f.offsets[0]! : 0;
    f.nameLength = this.parsed > 0 ? f.offsets[1]! : 0;
    this.consumed += length;
    this.argc = -1;
    this.bulkLen = -1;
    this.cursor = 0;
    this.need = 0;
    this.parsed = 0;
    this.annotationText = null;
    sink(f);
    // A command of very many args (an MSET of a million keys) does not keep its table for good.
    if (f.offsets.length > OFFSETS_KEPT) f.offsets = new Float64Array(32);
  }

  private error(message: string, position: number): RfError {
    return new RfError('RF_PROTOCOL', `malformed RESP at byte ${position}: ${message}`, {
      details: { position, frameStart: this.consumed },
      hint: 'the bytes before frameStart are intact; the data from there on is not a Redis command stream',
    });
  }
}

function describeByte(byte: number | undefined): string {
  if (byte === undefined) return 'end of input';
  const hex = `0x${byte.toString(16).padStart(2, '0')}`;
  return byte >= 0x20 && byte < 0x7f ? `'${String.fromCharCode(byte)}' (${hex})` : hex;
}
