import { createHash, randomUUID } from 'node:crypto';
import { createWriteStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { RfError } from '../errors.js';
import { AofArchive } from './aof-archive.js';
import { aofBaseFileName, aofKeys, chunkId, EMPTY_SHA256, sha256 } from './aof-keys.js';
import type {
  AofBaseMeta,
  AofChunkMeta,
  AofFileRecord,
  AofGap,
  AofSizeSample,
  AofStats,
  BaseBody,
  BaseOffer,
  PutResult,
} from './aof-types.js';
import { diskError, json, type Store, storePaths } from './store.js';

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
