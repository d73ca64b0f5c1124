/**
 * Shared by the AOF tests: reading back what a capture stored, checking it joins up, and parsing
 * AOF bytes into commands.
 */
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import type { AofSink, HeldState } from '../../src/aof/sink.js';
import type { Logger } from '../../src/logger.js';
import { silentLogger } from '../../src/logger.js';
import { FrameScanner } from '../../src/resp/frames.js';
import {
  AofArchive,
  type AofBaseMeta,
  type AofChunkMeta,
  type AofFileRecord,
  type AofGap,
  type AofSizeSample,
  type BaseBody,
  type BaseOffer,
  type PutResult,
} from '../../src/store/chunks.js';
import type { KvReader } from '../../src/store/store.js';
import { aofTimestampArgs } from '../helpers/redis-bin.js';

export const quiet: Logger = silentLogger();

export interface StoredFile {
  record: AofFileRecord;
  chunks: AofChunkMeta[];
  /** The chunks' bytes concatenated, each checked against its checksum. */
  bytes: Buffer;
}

/**
 * Every file of a source with its chunks up to the end its record names, in fileNo order. Fails
 * the test if chunks do not join up (a byte lost or stored twice) or stop short of the record.
 */
export async function storedFiles(kv: KvReader, source: string): Promise<StoredFile[]> {
  const archive = new AofArchive(kv);
  const out: StoredFile[] = [];
  for (const record of await archive.files(source)) {
    const chunks: AofChunkMeta[] = [];
    const parts: Buffer[] = [];
    let at = record.chunkStart;
    for await (const meta of archive.chunks(source, record.fileNo)) {
      // A capture still running may have stored more since the record was read.
      if (meta.start >= record.capturedEnd) break;
      if (meta.start !== at)
        throw new Error(`${record.name}: chunk at ${meta.start}, expected ${at}`);
      parts.push(await archive.readChunk(source, meta));
      chunks.push(meta);
      at = meta.end;
    }
    if (at !== record.capturedEnd)
      throw new Error(`${record.name}: chunks end at ${at}, record says ${record.capturedEnd}`);
    out.push({ record, chunks, bytes: Buffer.concat(parts) });
  }
  return out;
}

export async function storedBases(
  kv: KvReader,
  source: string,
): Promise<{ meta: AofBaseMeta; bytes: Buffer }[]> {
  const archive = new AofArchive(kv);
  return (await archive.bases(source)).map((meta) => {
    const p = archive.basePath(meta);
    return { meta, bytes: p === null ? Buffer.alloc(0) : readFileSync(p) };
  });
}

/** The commands in AOF bytes, as strings, annotations left out. */
export function commandsOf(bytes: Buffer): string[][] {
  const scanner = new FrameScanner({ annotations: true });
  const out: string[][] = [];
  for (const f of scanner.push(bytes)) {
    if (f.kind === 'command') out.push(f.args.map((a) => a.toString('utf8')));
  }
  if (scanner.pendingBytes !== 0)
    throw new Error(`${scanner.pendingBytes} bytes of an incomplete command`);
  return out;
}

/** Only the commands of the test's write load (helpers/load.ts), in the order stored. */
export function loadCommands(commands: string[][]): string[][] {
  return commands.filter(
    (c) => /^(set|rpush)$/i.test(c[0] ?? '') && String(c[1]).startsWith('load:'),
  );
}

export interface SendRecord {
  kind: 'chunk' | 'base';
  at: number;
  bytes: number;
}

/**
 * A sink that hands everything to another and notes when each send starts (monotonic clock),
 * and can be slowed down or made to fail, for the throttle and lag tests.
 */
export class RecordingSink implements AofSink {
  readonly sends: SendRecord[] = [];
  delayMs = 0;

  constructor(private readonly inner: AofSink) {}

  held(): Promise<HeldState> {
    return this.inner.held();
  }
  putFile(record: AofFileRecord): Promise<AofFileRecord> {
    return this.inner.putFile(record);
  }
  async putChunk(meta: AofChunkMeta, data: Buffer): Promise<PutResult> {
    this.sends.push({ kind: 'chunk', at: performance.now(), bytes: data.length });
    if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
    return this.inner.putChunk(meta, data);
  }
  putBase(meta: BaseOffer, open: (() => BaseBody) | null): Promise<PutResult> {
    return this.inner.putBase(
      meta,
      open === null
        ? null
        : () => {
            const body = open();
            const sends = this.sends;
            async function* noted(): AsyncGenerator<Buffer> {
              for await (const piece of body.stream as AsyncIterable<Buffer>) {
                sends.push({ kind: 'base', at: performance.now(), bytes: piece.length });
                yield piece;
              }
            }
            return { stream: Readable.from(noted()), sha256: body.sha256 };
          },
    );
  }
  putGap(gap: AofGap): Promise<void> {
    return this.inner.putGap(gap);
  }
  putSize(sample: AofSizeSample): Promise<void> {
    return this.inner.putSize(sample);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

export const REDIS7_AOF = [
  '--appendonly',
  'yes',
  ...aofTimestampArgs(),
  '--auto-aof-rewrite-percentage',
  '0',
];

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
