/**
 * Integrity check of an RDB file as Redis writes it, without loading it: the header, the EOF
 * opcode and the CRC64 trailer. It streams, so a 10 GB base costs a few kilobytes of memory.
 *
 * The layout it relies on (redis/redis src/rdb.c, rdbSaveRio and rdbLoadRioWithLoadingCtx):
 *   "REDIS" + 4 ASCII digits (the RDB version) | opcodes and values … | 0xFF (RDB_OPCODE_EOF)
 *   | 8-byte little-endian CRC64 of every byte before it (versions >= 5 only)
 * A stored checksum of 0 means the writer ran with `rdbchecksum no`; Redis then loads the file
 * without checking ("RDB file was saved with checksum disabled: no check performed.").
 *
 * What it does not do is walk the values: a file whose last 9 bytes happen to look like a
 * trailer with checksumming disabled passes. `redis-check-rdb` parses every value.
 */
import { createReadStream } from 'node:fs';
import { RfError } from '../errors.js';
import { Crc64 } from './crc64.js';
import { RDB_HEADER_LEN, readRdbHeader } from './versions.js';

/** "REDIS" + 4 digits (rdbSaveRio: snprintf(magic, sizeof(magic), "REDIS%04d", RDB_VERSION)). */
const HEADER_LEN = RDB_HEADER_LEN;
/** RDB_OPCODE_EOF in src/rdb.h. */
const OPCODE_EOF = 0xff;
const CHECKSUM_LEN = 8;
/** The checksum trailer arrived with RDB version 5 (Redis 2.6); rdbLoad checks `rdbver >= 5`. */
const FIRST_CHECKSUM_VERSION = 5;

export interface RdbCheckResult {
  /** The RDB format version from the header (10 for Redis 7.0, 11 for 7.2, 12 for 7.4). */
  version: number;
  /** The file's length. */
  bytes: number;
  /** CRC64 of the bytes the checksum covers, as 16 hex digits. */
  crc: string;
  /** The file was written with `rdbchecksum no` (or predates checksums): nothing was compared. */
  checksumDisabled: boolean;
}

const HINT = (source: string) =>
  `\`redis-check-rdb ${source}\` parses the file and shows where it breaks; ` +
  'a base that fails this check cannot be restored from';

/**
 * Incremental form of the check, for bytes that arrive in pieces (a file read, or an RDB
 * transfer from the master being written to disk). The last 8 bytes seen are held back from
 * the CRC because, until the stream ends, any 8 bytes could be the trailer.
 */
export class RdbChecker {
  readonly #source: string;
  readonly #header = Buffer.alloc(HEADER_LEN);
  #headerLen = 0;
  #version = 0;
  readonly #crc = new Crc64();
  readonly #tail = Buffer.alloc(CHECKSUM_LEN);
  #tailLen = 0;
  /** The last byte fed to the CRC: the EOF opcode, once the stream is complete. */
  #lastCovered = -1;
  #bytes = 0;
  #finished = false;

  /** `source` names the file in errors (a path, or a description of the transfer). */
  constructor(source: string) {
    this.#source = source;
  }

  get bytes(): number {
    return this.#bytes;
  }

  /** Throws RF_CORRUPT as soon as the header is known to be wrong. */
  update(chunk: Uint8Array): void {
    if (this.#finished) throw new TypeError('RdbChecker.update() after finish()');
    this.#bytes += chunk.length;
    if (this.#headerLen < HEADER_LEN) {
      const n = Math.min(HEADER_LEN - this.#headerLen, chunk.length);
      this.#header.set(chunk.subarray(0, n), this.#headerLen);
      this.#headerLen += n;
      if (this.#headerLen === HEADER_LEN) this.#version = this.#parseHeader();
    }

    const pending = this.#tailLen + chunk.length;
    if (pending <= CHECKSUM_LEN) {
      this.#tail.set(chunk, this.#tailLen);
      this.#tailLen = pending;
      return;
    }
    const covered = pending - CHECKSUM_LEN;
    const fromTail = Math.min(this.#tailLen, covered);
    const fromChunk = covered - fromTail;
    if (fromTail > 0) {
      this.#crc.update(this.#tail.subarray(0, fromTail));
      this.#lastCovered = this.#tail[fromTail - 1]!;
    }
    if (fromChunk > 0) {
      this.#crc.update(chunk.subarray(0, fromChunk));
      this.#lastCovered = chunk[fromChunk - 1]!;
    }
    // Keep the last 8 bytes: what is left of the old tail, then the end of this chunk.
    this.#tail.copyWithin(0, fromTail, this.#tailLen);
    this.#tail.set(chunk.subarray(fromChunk), this.#tailLen - fromTail);
    this.#tailLen = CHECKSUM_LEN;
  }

  /** Throws RF_CORRUPT for a short or unterminated file, RF_CHECKSUM for a CRC mismatch. */
  finish(): RdbCheckResult {
    if (this.#finished) throw new TypeError('RdbChecker.finish() called twice');
    this.#finished = true;
    const source = this.#source;
    const bytes = this.#bytes;
    if (this.#headerLen < HEADER_LEN) {
      throw new RfError(
        'RF_CORRUPT',
        `${source} is truncated: ${bytes} bytes, shorter than the 9-byte RDB header`,
        { details: { path: source, bytes }, hint: HINT(source) },
      );
    }

    if (this.#version < FIRST_CHECKSUM_VERSION) {
      // No trailer: the held-back bytes are content and the EOF opcode is the very last byte.
      this.#crc.update(this.#tail.subarray(0, this.#tailLen));
      const last = this.#tail[this.#tailLen - 1] ?? this.#lastCovered;
      if (bytes < HEADER_LEN + 1 || last !== OPCODE_EOF) throw this.#missingEof(last);
      return { version: this.#version, bytes, crc: this.#crc.hex(), checksumDisabled: true };
    }

    if (bytes < HEADER_LEN + 1 + CHECKSUM_LEN || this.#lastCovered !== OPCODE_EOF) {
      throw this.#missingEof(this.#lastCovered);
    }
    const actual = this.#crc.hex();
    // Written with memrev64ifbe, i.e. little-endian on every host.
    const stored =
      this.#tail.readUInt32LE(4).toString(16).padStart(8, '0') +
      this.#tail.readUInt32LE(0).toString(16).padStart(8, '0');
    const checksumDisabled = stored === '0000000000000000';
    if (!checksumDisabled && stored !== actual) {
      throw new RfError(
        'RF_CHECKSUM',
        `${source}: RDB checksum mismatch, the file says ${stored} but its bytes give ${actual}`,
        {
          details: { path: source, expected: stored, actual, bytes },
          hint: `the file changed after Redis wrote it (disk, copy or transfer error); ${HINT(source)}`,
        },
      );
    }
    return { version: this.#version, bytes, crc: actual, checksumDisabled };
  }

  #parseHeader(): number {
    const header = readRdbHeader(this.#header, this.#source);
    if (header.kind === 'not-rdb') {
      throw new RfError(
        'RF_CORRUPT',
        `${this.#source} is not an RDB file: it starts with ${JSON.stringify(
          this.#header.toString('latin1'),
        )}, not REDIS and a 4-digit version`,
        {
          details: { path: this.#source, header: this.#header.toString('hex') },
          hint: HINT(this.#source),
        },
      );
    }
    return header.version;
  }

  #missingEof(last: number): RfError {
    const source = this.#source;
    const ending =
      this.#version < FIRST_CHECKSUM_VERSION
        ? 'the EOF opcode (0xff)'
        : 'the EOF opcode (0xff) and an 8-byte checksum';
    const seen = last < 0 ? 'no byte' : `0x${last.toString(16).padStart(2, '0')}`;
    return new RfError(
      'RF_CORRUPT',
      `${source} is truncated or incomplete: it does not end with ${ending} (found ${seen} where the opcode belongs)`,
      { details: { path: source, bytes: this.#bytes, version: this.#version }, hint: HINT(source) },
    );
  }
}

/**
 * Streams the file at `path` through the check (1 MiB reads; memory does not grow with the
 * file). Errors opening or reading the file are Node's own (ENOENT, EACCES): whether a missing
 * file is a broken store or a typo is for the caller to say.
 */
export async function checkRdbFile(path: string): Promise<RdbCheckResult> {
  const checker = new RdbChecker(path);
  // for await closes the stream when update() throws, so a bad header stops the read early.
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) {
    checker.update(chunk as Buffer);
  }
  return checker.finish();
}
