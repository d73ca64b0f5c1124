/**
 * The capture's two deliveries: the next chunk of a followed file, cut on command boundaries, and
 * a base copied whole. Both are paced by `--chunk-pause`; the caller counts and reports them.
 */
import {
  type AofChunkMeta,
  type BaseBody,
  EMPTY_SHA256,
  type PutResult,
  sha256,
} from '../store/chunks.js';
import { cutFrames } from './cut.js';
import { pacedBody, readExactly } from './file-read.js';
import type { Pacer } from './pacer.js';
import type { AofSink } from './sink.js';
import { type PendingBase, remember, type Tracked } from './tracked.js';

export interface Delivery {
  sink: AofSink;
  pacer: Pacer;
  chunkSize: number;
  /** How many bytes of the latest chunks a file keeps to compare (tracked.ts remember). */
  recheckBytes: number;
}

/**
 * Cuts and sends the next chunk of `f` and moves `f` past it; null when no whole command is
 * there yet.
 */
export async function sendChunk(
  f: Tracked,
  size: number,
  d: Delivery,
): Promise<{ meta: AofChunkMeta; result: PutResult } | null> {
  let want = Math.min(size - f.pos, d.chunkSize);
  let data: Buffer | null = null;
  let cut: ReturnType<typeof cutFrames> | null = null;
  for (;;) {
    const buf = await readExactly(f.fh, f.pos, want);
    if (buf === null) return null;
    cut = cutFrames(buf, f.pos, d.chunkSize, f.record.name);
    if (cut.length > 0) {
      data = buf.subarray(0, cut.length);
      break;
    }
    // One command larger than a chunk: read on until it is whole (it becomes a chunk alone).
    if (want >= size - f.pos) return null;
    want = Math.min(size - f.pos, want * 2);
  }
  const meta: AofChunkMeta = {
    fileNo: f.record.fileNo,
    file: f.record.name,
    seq: f.record.seq,
    start: f.pos,
    end: f.pos + data.length,
    sha256: sha256(data),
    capturedAt: Date.now(),
    commands: cut.commands,
    firstTs: cut.firstTs,
    lastTs: cut.lastTs,
  };
  await d.pacer.ready();
  let result: PutResult;
  try {
    result = await d.sink.putChunk(meta, data);
  } finally {
    d.pacer.sent();
  }
  f.pos = meta.end;
  f.record = {
    ...f.record,
    capturedEnd: meta.end,
    chunks: f.record.chunks + 1,
    last: { start: meta.start, end: meta.end, sha256: meta.sha256 },
  };
  remember(f, data, d.recheckBytes);
  return { meta, result };
}

/** Copies a base whole, in chunk-sized pieces paced like chunks, with its checksum; closes it. */
export async function copyBase(
  base: PendingBase,
  d: Delivery,
): Promise<{ result: PutResult; sha256: string }> {
  const { offer, fh } = base;
  let copied: Promise<string> = Promise.resolve(EMPTY_SHA256);
  const open =
    offer.bytes === 0
      ? null
      : (): BaseBody => {
          const body = pacedBody(fh, offer.bytes, d.chunkSize, d.pacer, base.path);
          copied = body.sha256;
          return body;
        };
  const result = await d.sink.putBase(offer, open);
  await fh.close();
  return { result, sha256: await copied };
}
