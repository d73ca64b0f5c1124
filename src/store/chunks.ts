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
 *
 * The rest of rf imports the AOF record from here; its parts are aof-types.ts (the records),
 * aof-keys.ts (this layout, ids and checksums), aof-archive.ts (reading, through any KvReader)
 * and aof-writer.ts (writing, for the process that owns the store).
 */
export { AofArchive } from './aof-archive.js';
export { aofBaseFileName, aofKeys, chunkId, EMPTY_SHA256, sha256 } from './aof-keys.js';
export type {
  AofBaseFormat,
  AofBaseMeta,
  AofChunkMeta,
  AofFileKind,
  AofFileRecord,
  AofGap,
  AofSizeSample,
  AofStats,
  BaseBody,
  BaseOffer,
  PutResult,
} from './aof-types.js';
export { AofChunkWriter } from './aof-writer.js';
