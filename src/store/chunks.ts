/**
 * LevelDB layout of the AOF capture, the second history of a source (DESIGN.md, "Two independent
 * captures"). Same rules as keys.ts: UTF-8 keys, numbers in fixed-width lower-case hex so that
 * byte order is numeric order.
 *
 *   s/<source>/aof/file/<fileNo>              AofFileRecord (JSON): one AOF file rf follows
 *   s/<source>/aof/chunk/<fileNo>/<start>     AofChunkMeta (JSON)
 *   s/<source>/aof/data/<fileNo>/<start>      the chunk's bytes, exactly as they are in the file
 *   s/<source>/aof/base/<fileNo>              AofBaseMeta (JSON); the bytes are a file under
 *                                             aof-bases/<source>/ in the store directory
 *   s/<source>/aof/gap/<fileNo>/<start>       AofGap (JSON): bytes of a file rf could not capture
 *   s/<source>/aof/stats                      AofStats (JSON): totals, moved with every chunk
 *   s/<source>/aof/size                       AofSizeSample (JSON): the last sampled AOF size
 *
 * fileNo is rf's own number for a file (8 hex digits), given in the order rf first sees the
 * files and never reused: Redis reuses names (a Redis 6 `appendonly.aof` is a new file after
 * every rewrite; a Redis 7 that lost its appendonlydir starts again at seq 1). start is a byte
 * position in that file (16 hex digits). A chunk covers [start, end) and chunks of a file join
 * up: each starts where the previous one ended, which the writer enforces.
 */
import { createHash, randomUUID } from 'node:crypto';
import { createWriteStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { type Readable, Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { RfError } from '../errors.js';
import { hex, prefixEnd } from './keys.js';
import { diskError, json, type KvReader, type Store, storePaths } from './store.js';

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

/** sha256 of no bytes: the checksum of an 'empty' base. */
export const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

const fileHex = (n: number) => hex(n, 8);
const posHex = (n: number) => hex(n, 16);

export const aofKeys = {
  prefix: (src: string) => `s/${src}/aof/`,
  file: (src: string, fileNo: number) => `s/${src}/aof/file/${fileHex(fileNo)}`,
  filePrefix: (src: string) => `s/${src}/aof/file/`,
  chunk: (src: string, fileNo: number, start: number) =>
    `s/${src}/aof/chunk/${fileHex(fileNo)}/${posHex(start)}`,
  chunkPrefix: (src: string, fileNo: number) => `s/${src}/aof/chunk/${fileHex(fileNo)}/`,
  data: (src: string, fileNo: number, start: number) =>
    `s/${src}/aof/data/${fileHex(fileNo)}/${posHex(start)}`,
  base: (src: string, fileNo: number) => `s/${src}/aof/base/${fileHex(fileNo)}`,
  basePrefix: (src: string) => `s/${src}/aof/base/`,
  gap: (src: string, fileNo: number, start: number) =>
    `s/${src}/aof/gap/${fileHex(fileNo)}/${posHex(start)}`,
  gapPrefix: (src: string) => `s/${src}/aof/gap/`,
  stats: (src: string) => `s/${src}/aof/stats`,
  size: (src: string) => `s/${src}/aof/size`,
};

/** A chunk's id on the wire and in messages: `<fileNo>:<start>`. */
export function chunkId(meta: Pick<AofChunkMeta, 'fileNo' | 'start'>): string {
  return `${meta.fileNo}:${meta.start}`;
}

export function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Where a base file lives, relative to the store directory. */
export function aofBaseFileName(src: string, fileNo: number, name: string): string {
  // The Redis name is kept for a person looking at the directory; the number makes it unique.
  const safe = name.replace(/[^A-Za-z0-9._-]/g, '_');
  return path.join('aof-bases', src, `${fileHex(fileNo)}-${safe}`);
}

const emptyStats = (): AofStats => ({
  chunks: 0,
  bytes: 0,
  bases: 0,
  lastChunkAt: null,
  lastBaseAt: null,
});

/**
 * Read side of the AOF capture. Works on any KvReader, so `rf info` and `rf verify` read it
 * through the daemon while `rf listen` holds the store.
 */
export class AofArchive {
  constructor(readonly kv: KvReader) {}

  async files(src: string): Promise<AofFileRecord[]> {
    return this.collect<AofFileRecord>(aofKeys.filePrefix(src));
  }

  async file(src: string, fileNo: number): Promise<AofFileRecord | undefined> {
    return this.getJson<AofFileRecord>(aofKeys.file(src, fileNo));
  }

  async bases(src: string): Promise<AofBaseMeta[]> {
    return this.collect<AofBaseMeta>(aofKeys.basePrefix(src));
  }

  async base(src: string, fileNo: number): Promise<AofBaseMeta | undefined> {
    return this.getJson<AofBaseMeta>(aofKeys.base(src, fileNo));
  }

  async gaps(src: string): Promise<AofGap[]> {
    return this.collect<AofGap>(aofKeys.gapPrefix(src));
  }

  async stats(src: string): Promise<AofStats> {
    return (await this.getJson<AofStats>(aofKeys.stats(src))) ?? emptyStats();
  }

  async size(src: string): Promise<AofSizeSample | undefined> {
    return this.getJson<AofSizeSample>(aofKeys.size(src));
  }

  async chunk(src: string, fileNo: number, start: number): Promise<AofChunkMeta | undefined> {
    return this.getJson<AofChunkMeta>(aofKeys.chunk(src, fileNo, start));
  }

  /** Chunk metas of one file in byte order. */
  async *chunks(src: string, fileNo: number): AsyncIterable<AofChunkMeta> {
    const prefix = aofKeys.chunkPrefix(src, fileNo);
    for await (const [, v] of this.kv.entries({ gte: prefix, lt: prefixEnd(prefix) })) {
      yield json.decode<AofChunkMeta>(v);
    }
  }

  /** A chunk's bytes, checked against its checksum (RF_CHECKSUM) and length (RF_CORRUPT). */
  async readChunk(src: string, meta: AofChunkMeta): Promise<Buffer> {
    const where = `${src}/aof file ${meta.fileNo} (${meta.file}) bytes ${meta.start}..${meta.end}`;
    const data = await this.kv.get(aofKeys.data(src, meta.fileNo, meta.start));
    const hint = 'run `rf verify` to list every damaged part of the archive';
    if (data === undefined || data.length !== meta.end - meta.start) {
      throw new RfError('RF_CORRUPT', `AOF chunk ${where} is missing or has the wrong length`, {
        details: {
          source: src,
          fileNo: meta.fileNo,
          start: meta.start,
          end: meta.end,
          length: data?.length ?? null,
        },
        hint,
      });
    }
    const actual = sha256(data);
    if (actual !== meta.sha256) {
      throw new RfError('RF_CHECKSUM', `AOF chunk ${where} does not match its checksum`, {
        details: {
          source: src,
          fileNo: meta.fileNo,
          start: meta.start,
          expected: meta.sha256,
          actual,
        },
        hint,
      });
    }
    return data;
  }

  /** Absolute path of a base's bytes, or null for an 'empty' base. */
  basePath(meta: AofBaseMeta): string | null {
    return meta.file === null ? null : path.join(this.kv.dir, meta.file);
  }

  private async getJson<T>(key: string): Promise<T | undefined> {
    const v = await this.kv.get(key);
    return v === undefined ? undefined : json.decode<T>(v);
  }

  private async collect<T>(prefix: string): Promise<T[]> {
    const out: T[] = [];
    for await (const [, v] of this.kv.entries({ gte: prefix, lt: prefixEnd(prefix) }))
      out.push(json.decode<T>(v));
    return out;
  }
}

/**
 * Write side, for the process that owns the store (`rf listen`: its own tailer and the ingest
 * server). Every check-then-write runs under one lock per writer, so a retried request racing
 * its original cannot store a chunk twice.
 */
const storeLocks = new WeakMap<Store, Promise<unknown>>();

/** A base body longer than its offer: refused before the extra bytes reach the disk. */
function tooLong(src: string, offer: BaseOffer): RfError {
  return new RfError(
    'RF_USAGE',
    `AOF base ${offer.name} of ${src} runs past the ${offer.bytes} bytes it announced`,
    { details: { source: src, fileNo: offer.fileNo, announced: offer.bytes } },
  );
}

export class AofChunkWriter {
  private readonly archive: AofArchive;
  constructor(private readonly store: Store) {
    this.archive = new AofArchive(store);
  }

  get reader(): AofArchive {
    return this.archive;
  }

  /**
   * Creates a file record, or marks it `ended`. The
   * identity fields of an existing record must match: a different file under the same number is
   * RF_CHUNK_CONFLICT.
   */
  putFile(src: string, record: AofFileRecord): Promise<AofFileRecord> {
    return this.exclusive(async () => {
      const existing = await this.archive.file(src, record.fileNo);
      if (existing === undefined) {
        const fresh: AofFileRecord = {
          ...record,
          capturedEnd: record.chunkStart,
          chunks: 0,
          last: null,
        };
        await this.store.batch([
          { type: 'put', key: aofKeys.file(src, record.fileNo), value: json.encode(fresh) },
        ]);
        return fresh;
      }
      if (
        existing.name !== record.name ||
        existing.seq !== record.seq ||
        existing.ino !== record.ino ||
        existing.kind !== record.kind
      ) {
        throw new RfError(
          'RF_CHUNK_CONFLICT',
          `AOF file ${record.fileNo} of ${src} is ${existing.name} (seq ${existing.seq}) in the store, not ${record.name} (seq ${record.seq})`,
          {
            details: {
              source: src,
              fileNo: record.fileNo,
              stored: existing.name,
              offered: record.name,
            },
            hint: 'two shippers may be sending under the same --name; give each Redis its own --name',
          },
        );
      }
      if (record.ended !== null && record.ended.size !== existing.capturedEnd) {
        throw new RfError(
          'RF_CHUNK_ORDER',
          `AOF file ${record.name} of ${src} cannot end at ${record.ended.size}: the store holds it up to ${existing.capturedEnd}`,
          {
            details: {
              source: src,
              fileNo: record.fileNo,
              size: record.ended.size,
              capturedEnd: existing.capturedEnd,
            },
          },
        );
      }
      const next: AofFileRecord = { ...existing, ended: existing.ended ?? record.ended };
      if (JSON.stringify(next) !== JSON.stringify(existing)) {
        await this.store.batch([
          { type: 'put', key: aofKeys.file(src, record.fileNo), value: json.encode(next) },
        ]);
      }
      return next;
    });
  }

  /**
   * Stores one chunk, its file's new end and the totals in one fsynced batch. The same chunk
   * again (same id, same checksum) is 'duplicate' and changes nothing; another chunk under an
   * id already stored is RF_CHUNK_CONFLICT; bytes that do not match the declared checksum are
   * RF_CHECKSUM; a chunk that does not start where the file's last one ended is RF_CHUNK_ORDER.
   */
  putChunk(src: string, meta: AofChunkMeta, data: Buffer): Promise<PutResult> {
    return this.exclusive(async () => {
      const actual = sha256(data);
      if (actual !== meta.sha256 || data.length !== meta.end - meta.start) {
        throw new RfError(
          'RF_CHECKSUM',
          `AOF chunk ${chunkId(meta)} of ${src} does not match its checksum`,
          {
            details: {
              source: src,
              chunk: chunkId(meta),
              expected: meta.sha256,
              actual,
              length: data.length,
              declared: meta.end - meta.start,
            },
            hint: 'the bytes changed on the way; the shipper sends the chunk again',
          },
        );
      }
      const existing = await this.archive.chunk(src, meta.fileNo, meta.start);
      if (existing !== undefined) {
        if (existing.sha256 === meta.sha256 && existing.end === meta.end) return 'duplicate';
        throw new RfError(
          'RF_CHUNK_CONFLICT',
          `AOF chunk ${chunkId(meta)} of ${src} is already stored with other bytes`,
          {
            details: {
              source: src,
              chunk: chunkId(meta),
              stored: existing.sha256,
              offered: meta.sha256,
              storedEnd: existing.end,
              offeredEnd: meta.end,
            },
            hint: 'the AOF on the Redis host no longer matches what was shipped; run `rf verify` and check for two shippers under one --name',
          },
        );
      }
      const file = await this.archive.file(src, meta.fileNo);
      if (file === undefined) {
        throw new RfError(
          'RF_CHUNK_ORDER',
          `AOF chunk ${chunkId(meta)} of ${src} names file ${meta.fileNo}, which the store does not know`,
          {
            details: { source: src, chunk: chunkId(meta) },
          },
        );
      }
      if (meta.start !== file.capturedEnd || file.ended !== null) {
        throw new RfError(
          'RF_CHUNK_ORDER',
          `AOF chunk ${chunkId(meta)} of ${src} does not join up: the store holds ${file.name} up to byte ${file.capturedEnd}${file.ended ? ' (ended)' : ''}`,
          {
            details: {
              source: src,
              chunk: chunkId(meta),
              start: meta.start,
              capturedEnd: file.capturedEnd,
              ended: file.ended !== null,
            },
            hint: 'the shipper resumes from what the store holds',
          },
        );
      }
      const stats = await this.archive.stats(src);
      const nextFile: AofFileRecord = {
        ...file,
        capturedEnd: meta.end,
        chunks: file.chunks + 1,
        last: { start: meta.start, end: meta.end, sha256: meta.sha256 },
      };
      const nextStats: AofStats = {
        ...stats,
        chunks: stats.chunks + 1,
        bytes: stats.bytes + data.length,
        lastChunkAt: Math.max(stats.lastChunkAt ?? 0, meta.capturedAt),
      };
      await this.store.batch([
        { type: 'put', key: aofKeys.chunk(src, meta.fileNo, meta.start), value: json.encode(meta) },
        { type: 'put', key: aofKeys.data(src, meta.fileNo, meta.start), value: data },
        { type: 'put', key: aofKeys.file(src, meta.fileNo), value: json.encode(nextFile) },
        { type: 'put', key: aofKeys.stats(src), value: json.encode(nextStats) },
      ]);
      return 'stored';
    });
  }

  /**
   * Streams a base into the store: to a temp file while hashing it, compared with the sender's
   * own checksum once the last byte is in (RF_CHECKSUM on a mismatch or a wrong length), fsynced,
   * renamed into aof-bases/, then recorded. A base already stored is 'duplicate' when the bytes
   * are the same and RF_CHUNK_CONFLICT when not.
   */
  async putBase(src: string, offer: BaseOffer, body: BaseBody | null): Promise<PutResult> {
    const existing = await this.archive.base(src, offer.fileNo);
    let sha = EMPTY_SHA256;
    let tmp: string | null = null;
    try {
      if (offer.bytes > 0) {
        if (body === null) throw new TypeError('putBase: a base with bytes needs a body');
        const hash = createHash('sha256');
        let bytes = 0;
        const count = new Transform({
          transform(piece: Buffer, _enc, done) {
            hash.update(piece);
            bytes += piece.length;
            // Checked as it streams: a sender never fills the disk past what it announced.
            if (bytes > offer.bytes) done(tooLong(src, offer));
            else done(null, piece);
          },
        });
        tmp = path.join(
          storePaths(this.store.dir).tmp,
          `aof-base-${offer.fileNo}-${randomUUID()}.tmp`,
        );
        await fs.mkdir(path.dirname(tmp), { recursive: true, mode: 0o700 });
        const into = tmp;
        await pipeline(
          body.stream,
          count,
          existing === undefined ? createWriteStream(into, { mode: 0o600 }) : devNull(),
        ).catch((err: unknown) => {
          throw diskError(this.store.dir, err, into);
        });
        sha = hash.digest('hex');
        const declared = await body.sha256;
        if (sha !== declared || bytes !== offer.bytes) {
          throw new RfError(
            'RF_CHECKSUM',
            `AOF base ${offer.name} of ${src} does not match its checksum`,
            {
              details: {
                source: src,
                fileNo: offer.fileNo,
                expected: declared,
                actual: sha,
                bytes,
                declared: offer.bytes,
              },
              hint: 'the bytes changed on the way; the shipper sends the base again',
            },
          );
        }
      }
      // The check, the rename into place and the record under one lock: two uploads of one
      // base racing must leave the file on disk and the checksum recorded for it in agreement.
      const staged = tmp;
      return await this.exclusive(async () => {
        const again = existing ?? (await this.archive.base(src, offer.fileNo));
        if (again !== undefined) {
          if (again.sha256 === sha && again.bytes === offer.bytes) return 'duplicate';
          throw new RfError(
            'RF_CHUNK_CONFLICT',
            `AOF base ${offer.fileNo} (${offer.name}) of ${src} is already stored with other bytes`,
            {
              details: { source: src, fileNo: offer.fileNo, stored: again.sha256, offered: sha },
              hint: 'check for two shippers under one --name',
            },
          );
        }
        let rel: string | null = null;
        if (staged !== null) {
          rel = aofBaseFileName(src, offer.fileNo, offer.name);
          const dest = path.join(this.store.dir, rel);
          await fsyncFile(staged);
          await fs.mkdir(path.dirname(dest), { recursive: true, mode: 0o700 });
          await fs.rename(staged, dest);
          tmp = null;
          // The rename must reach the disk before the record that points at the file does.
          await fsyncFile(path.dirname(dest));
        }
        const stats = await this.archive.stats(src);
        const record: AofBaseMeta = { ...offer, sha256: sha, file: rel, copiedAt: Date.now() };
        await this.store.batch([
          { type: 'put', key: aofKeys.base(src, offer.fileNo), value: json.encode(record) },
          {
            type: 'put',
            key: aofKeys.stats(src),
            value: json.encode({ ...stats, bases: stats.bases + 1, lastBaseAt: record.copiedAt }),
          },
        ]);
        return 'stored';
      });
    } finally {
      if (tmp !== null) await fs.rm(tmp, { force: true });
    }
  }

  putGap(src: string, gap: AofGap): Promise<void> {
    return this.exclusive(() =>
      this.store.batch([
        { type: 'put', key: aofKeys.gap(src, gap.fileNo, gap.start), value: json.encode(gap) },
      ]),
    );
  }

  putSize(src: string, sample: AofSizeSample): Promise<void> {
    return this.exclusive(() =>
      this.store.batch([{ type: 'put', key: aofKeys.size(src), value: json.encode(sample) }]),
    );
  }

  /**
   * One lock per store, shared by every writer on it: the local tailer and each ingest sink may
   * write the same source, and a check-then-write must not interleave with another's.
   */
  private exclusive<T>(f: () => Promise<T>): Promise<T> {
    const held = storeLocks.get(this.store) ?? Promise.resolve();
    const run = held.then(f, f);
    storeLocks.set(
      this.store,
      run.catch(() => undefined),
    );
    return run;
  }
}

function devNull(): Writable {
  return new Writable({
    write(_piece, _enc, done) {
      done();
    },
  });
}

async function fsyncFile(p: string): Promise<void> {
  const fh = await fs.open(p, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** What `rf info` shows for a source's AOF capture (its `aof` field). */
export interface AofSummary {
  chunks: number;
  bytes: number;
  bases: number;
  files: number;
  lastChunkAt: string | null;
  lastBaseAt: string | null;
  /** The last sampled AOF size on the Redis host, and when it was taken. */
  sizeBytes: number | null;
  sizeAt: string | null;
  gaps: { file: string; start: number; end: number | null; at: string; reason: AofGap['reason'] }[];
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

export async function aofSummary(kv: KvReader, src: string): Promise<AofSummary> {
  const archive = new AofArchive(kv);
  const [stats, size, files, gaps] = await Promise.all([
    archive.stats(src),
    archive.size(src),
    archive.files(src),
    archive.gaps(src),
  ]);
  return {
    chunks: stats.chunks,
    bytes: stats.bytes,
    bases: stats.bases,
    files: files.length,
    lastChunkAt: iso(stats.lastChunkAt),
    lastBaseAt: iso(stats.lastBaseAt),
    sizeBytes: size?.bytes ?? null,
    sizeAt: iso(size?.at ?? null),
    gaps: gaps.map((g) => ({
      file: g.file,
      start: g.start,
      end: g.end,
      at: iso(g.at)!,
      reason: g.reason,
    })),
  };
}
