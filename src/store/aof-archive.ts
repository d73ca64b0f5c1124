import path from 'node:path';
import { RfError } from '../errors.js';
import { aofKeys, sha256 } from './aof-keys.js';
import type {
  AofBaseMeta,
  AofChunkMeta,
  AofFileRecord,
  AofGap,
  AofSizeSample,
  AofStats,
} from './aof-types.js';
import { prefixEnd } from './keys.js';
import { chunkOffloaded, onlyInRepo, readOffload } from './offload.js';
import { json, type KvReader, readRecord, readRecords } from './store.js';

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
    if (data === undefined) {
      const offloaded = await readOffload(this.kv, src);
      if (chunkOffloaded(offloaded, meta.fileNo, meta.end))
        throw onlyInRepo(offloaded!, src, `AOF chunk ${where}`, {
          fileNo: meta.fileNo,
          start: meta.start,
          end: meta.end,
        });
    }
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

  private getJson<T>(key: string): Promise<T | undefined> {
    return readRecord<T>(this.kv, key);
  }

  private collect<T>(prefix: string): Promise<T[]> {
    return readRecords<T>(this.kv, prefix);
  }
}
