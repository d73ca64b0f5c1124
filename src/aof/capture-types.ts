/** The public shapes of the AOF capture (capture.ts): its options, status and events. */
import type { Logger } from '../logger.js';
import type {
  AofChunkMeta,
  AofFileRecord,
  AofGap,
  AofSizeSample,
  BaseOffer,
} from '../store/chunks.js';
import type { AofLayout } from './layout.js';
import type { Manifest } from './manifest.js';
import type { AofSink } from './sink.js';

export interface AofCaptureOptions {
  /** The Redis `dir` or its appendonlydir (Redis 7), or the directory of appendonly.aof (Redis 6). */
  aofDir: string;
  /** Where chunks and bases go; the capture closes it on stop. */
  sink: AofSink;
  /** `--chunk-size`: a chunk holds at most this many bytes, unless one command alone is larger. */
  chunkSize: number;
  /** `--chunk-pause`: ms between the end of one send and the start of the next. */
  chunkPauseMs: number;
  log: Logger;
  /** How often the files are looked at when there is nothing to do. */
  pollMs?: number;
  /** How long bytes fewer than a chunk wait for more before they are cut anyway. */
  lingerMs?: number;
  /** How often the AOF size is sampled (`rf info`, metrics). */
  sizeSampleMs?: number;
  /**
   * Bytes already stored that are kept to compare with what Redis writes again after it truncates
   * a short write (aof.c flushAppendOnlyFile); default max(chunkSize, 4 MiB).
   */
  recheckBytes?: number;
}

export interface AofCaptureStatus {
  dir: string;
  layout: AofLayout['kind'] | null;
  /** The file being followed: where the capture is in it and how large it is. */
  current: { file: string; fileNo: number; position: number; size: number } | null;
  /** Bytes written by Redis and not stored yet, over every file followed. */
  lagBytes: number;
  chunks: number;
  bytes: number;
  duplicates: number;
  bases: number;
  lastChunkAt: number | null;
  size: AofSizeSample | null;
  stopped: boolean;
}

export interface AofCaptureEvents {
  chunk: [AofChunkMeta];
  base: [BaseOffer & { sha256: string }];
  gap: [AofGap];
  'file-ended': [AofFileRecord];
  /** A manifest that differs from the last one read (Redis 7). */
  manifest: [Manifest];
}
