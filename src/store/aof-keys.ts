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
import { createHash } from 'node:crypto';
import path from 'node:path';
import type { AofChunkMeta } from './aof-types.js';
import { hex } from './keys.js';

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
