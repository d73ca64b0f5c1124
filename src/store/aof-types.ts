/** The records of the AOF capture in the store (layout in aof-keys.ts). */
import type { Readable } from 'node:stream';

export type AofFileKind = 'incr' | 'single';

/** A file whose bytes are cut into chunks: a Redis 7 incr file, or a Redis 6 single file. */
export interface AofFileRecord {
  fileNo: number;
  /** Redis's name for it: `appendonly.aof.3.incr.aof`, or `appendonly.aof`. */
  name: string;
  kind: AofFileKind;
  /** The manifest seq (Redis 7); for a Redis 6 file, rf's count of the generations it has seen. */
  seq: number;
  /** The inode on the Redis host: with name and seq, how a restarted capture recognises it. */
  ino: number;
  /** Where chunks begin: 0, or the end of a Redis 6 file's RDB preamble. */
  chunkStart: number;
  firstSeenAt: number;
  /** End of the last chunk stored: the next chunk must start here. */
  capturedEnd: number;
  chunks: number;
  /** The last chunk stored, so a restarted shipper can check it still matches the file. */
  last: { start: number; end: number; sha256: string } | null;
  /** Set once Redis writes no more to the file and every complete command of it is stored. */
  ended: { at: number; size: number } | null;
}

export interface AofChunkMeta {
  fileNo: number;
  file: string;
  seq: number;
  /** Byte range within the file: [start, end). */
  start: number;
  end: number;
  sha256: string;
  /** When the capture cut the chunk, ms since the epoch (the Redis host's clock for `rf ship`). */
  capturedAt: number;
  /** Complete commands in the chunk (annotations not counted). */
  commands: number;
  /** First and last `#TS:<unix seconds>` annotation inside the chunk (aof-timestamp-enabled). */
  firstTs: number | null;
  lastTs: number | null;
}

export type AofBaseFormat = 'rdb' | 'aof' | 'rdb-preamble' | 'empty';

/**
 * A restore starting point. For Redis 7 the base file copied whole; for a Redis 6 file its RDB
 * preamble ('rdb-preamble'), or nothing at all ('empty') when the file is commands from byte 0.
 */
export interface AofBaseMeta {
  fileNo: number;
  name: string;
  seq: number;
  /** The inode on the Redis host, to recognise the base again after a restart of the capture. */
  ino: number;
  format: AofBaseFormat;
  bytes: number;
  sha256: string;
  /** Relative to the store directory; null for an 'empty' base. */
  file: string | null;
  copiedAt: number;
  /** The file whose chunks follow this base first: the lowest incr listed with it, or the Redis 6 file itself. */
  firstFileNo: number | null;
}

export interface AofGap {
  fileNo: number;
  file: string;
  /** Byte range not captured: [start, end), end null when unknown (the file was gone). */
  start: number;
  end: number | null;
  at: number;
  reason: 'file-deleted' | 'torn-tail' | 'diverged';
}

export interface AofStats {
  chunks: number;
  bytes: number;
  bases: number;
  lastChunkAt: number | null;
  lastBaseAt: number | null;
}

export interface AofSizeSample {
  at: number;
  /** Bytes of the base and incr files the manifest lists (Redis 7) or of the single file (Redis 6). */
  bytes: number;
}

export type PutResult = 'stored' | 'duplicate';

/** A base as a capture offers it; the checksum comes with the bytes (see BaseBody). */
export type BaseOffer = Omit<AofBaseMeta, 'file' | 'copiedAt' | 'sha256'>;

/** A base's bytes, and the sender's checksum of them, known once they are all sent. */
export interface BaseBody {
  stream: Readable;
  sha256: Promise<string>;
}
