import {
  type AofBaseMeta,
  type AofChunkMeta,
  AofChunkWriter,
  type AofFileRecord,
  type AofGap,
  type AofSizeSample,
  type BaseBody,
  type BaseOffer,
  type PutResult,
} from '../store/chunks.js';
import { keys } from '../store/keys.js';
import { json, type Store } from '../store/store.js';
import type { SourceRecord } from '../store/types.js';

/** What the capture already delivered, as the receiver knows it: where a restart resumes. */
export interface HeldState {
  files: AofFileRecord[];
  bases: Pick<AofBaseMeta, 'fileNo' | 'name' | 'seq' | 'ino' | 'sha256'>[];
}

/**
 * Where the AOF capture delivers: the store itself (`rf listen --aof-dir`, and the ingest server)
 * or a remote `rf listen --ingest` over HTTP (`rf ship`). Every put is idempotent, so a capture
 * that is not sure a put arrived sends it again.
 */
export interface AofSink {
  held(): Promise<HeldState>;
  putFile(record: AofFileRecord): Promise<AofFileRecord>;
  putChunk(meta: AofChunkMeta, data: Buffer): Promise<PutResult>;
  /**
   * `open` gives a fresh stream of the base's bytes and their checksum each time it is called (a
   * retry reads the file again); null for a base of no bytes.
   */
  putBase(meta: BaseOffer, open: (() => BaseBody) | null): Promise<PutResult>;
  putGap(gap: AofGap): Promise<void>;
  putSize(sample: AofSizeSample): Promise<void>;
  close(): Promise<void>;
}

/** Delivers into a store this process owns. */
export class LocalSink implements AofSink {
  private readonly writer: AofChunkWriter;

  constructor(
    private readonly store: Store,
    readonly source: string,
    /** Recorded as the source's URL if the store does not know the source yet. */
    private readonly origin: string,
  ) {
    this.writer = new AofChunkWriter(store);
  }

  async held(): Promise<HeldState> {
    const reader = this.writer.reader;
    const [files, bases] = await Promise.all([
      reader.files(this.source),
      reader.bases(this.source),
    ]);
    return {
      files,
      bases: bases.map((b) => ({
        fileNo: b.fileNo,
        name: b.name,
        seq: b.seq,
        ino: b.ino,
        sha256: b.sha256,
      })),
    };
  }

  async putFile(record: AofFileRecord): Promise<AofFileRecord> {
    await this.ensureSource();
    return this.writer.putFile(this.source, record);
  }

  putChunk(meta: AofChunkMeta, data: Buffer): Promise<PutResult> {
    return this.writer.putChunk(this.source, meta, data);
  }

  async putBase(meta: BaseOffer, open: (() => BaseBody) | null): Promise<PutResult> {
    await this.ensureSource();
    return this.writer.putBase(this.source, meta, open === null ? null : open());
  }

  putGap(gap: AofGap): Promise<void> {
    return this.writer.putGap(this.source, gap);
  }

  putSize(sample: AofSizeSample): Promise<void> {
    return this.writer.putSize(this.source, sample);
  }

  async close(): Promise<void> {}

  /**
   * `rf info` lists the sources it finds under `src/`; a source archived only from its AOF (a
   * shipper, no replication stream) gets its record here. An existing record is left alone.
   */
  private async ensureSource(): Promise<void> {
    if ((await this.store.get(keys.source(this.source))) !== undefined) return;
    const record: SourceRecord = { name: this.source, url: this.origin, createdAt: Date.now() };
    await this.store.batch([
      { type: 'put', key: keys.source(this.source), value: json.encode(record) },
    ]);
  }
}
