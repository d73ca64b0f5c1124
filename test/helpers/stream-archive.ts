import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { silentLogger } from '../../src/logger.js';
import { crc64 } from '../../src/rdb/crc64.js';
import { encodeCommand } from '../../src/resp/encode.js';
import { Store } from '../../src/store/store.js';
import { beginTimeline } from '../../src/store/timelines.js';
import type { DurableState } from '../../src/store/types.js';
import { StreamWriter } from '../../src/store/writer.js';

/** An empty RDB as Redis 7.0 writes it: header, EOF opcode, CRC64 trailer. */
export function emptyRdb(): Buffer {
  const body = Buffer.from('REDIS0010\xff', 'latin1');
  const trailer = Buffer.alloc(8);
  trailer.writeBigUInt64LE(crc64(0n, body));
  return Buffer.concat([body, trailer]);
}

/**
 * Writes an archive with the store's own code (beginTimeline, StreamWriter), no Redis needed:
 * for tests of what reads the archive (verify, log, info) with exact control over times, dbs and
 * segment boundaries.
 */
export class ArchiveBuilder {
  private writer!: StreamWriter;
  private offset = 1;
  private state: DurableState | undefined;
  private timelines = 0;

  private constructor(
    readonly store: Store,
    readonly source: string,
    private readonly maxSegmentBytes: number,
  ) {}

  static async create(
    dir: string,
    options: { source?: string; maxSegmentBytes?: number; startedAt: number },
  ): Promise<ArchiveBuilder> {
    const store = await Store.open(dir, { create: true });
    const b = new ArchiveBuilder(
      store,
      options.source ?? 'default',
      options.maxSegmentBytes ?? 400,
    );
    await b.newTimeline(options.startedAt, 'a'.repeat(40));
    return b;
  }

  /** Starts the next timeline from a fresh (empty) base, as a full resync does. */
  async newTimeline(takenAt: number, replid: string): Promise<void> {
    if (this.timelines > 0) {
      await this.writer.flush();
      this.state = { ...this.state!, ...(await this.durable()) };
    }
    const rdb = emptyRdb();
    const tmpFile = path.join(this.store.dir, 'tmp', `base-${this.timelines + 1}.rdb`);
    await writeFile(tmpFile, rdb);
    const baseOffset = this.timelines === 0 ? 0 : this.offset + 1000;
    const { timeline, state } = await beginTimeline(
      this.store,
      { name: this.source, url: 'redis://test:1', createdAt: takenAt },
      this.state,
      {
        tmpFile,
        replid,
        offset: baseOffset,
        takenAt,
        bytes: rdb.length,
        sha256: createHash('sha256').update(rdb).digest('hex'),
        rdbVersion: 10,
        transfer: 'disk',
      },
    );
    this.timelines++;
    this.state = state;
    this.offset = baseOffset + 1;
    this.writer = new StreamWriter(this.store, this.source, timeline, state, {
      maxSegmentBytes: this.maxSegmentBytes,
      log: silentLogger(),
    });
  }

  private async durable(): Promise<Partial<DurableState>> {
    const raw = await this.store.get(`s/${this.source}/state`);
    return raw === undefined ? {} : (JSON.parse(raw.toString()) as DurableState);
  }

  /** Appends one command captured at `time`; seals a segment whenever one is full. */
  async add(args: (string | Buffer)[], time: number): Promise<number> {
    const bytes = encodeCommand(args);
    const at = this.offset;
    this.writer.append(
      at,
      bytes,
      args.map((a) => (typeof a === 'string' ? Buffer.from(a) : a)),
      time,
    );
    this.offset += bytes.length;
    if (this.writer.full) await this.writer.flush();
    return at;
  }

  /** Seals what is buffered into a segment now. */
  async flush(): Promise<void> {
    await this.writer.flush();
  }

  async close(): Promise<void> {
    await this.writer.flush();
    await this.store.close();
  }
}
