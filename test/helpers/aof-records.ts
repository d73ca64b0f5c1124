import type { AofFileRecord } from '../../src/store/chunks.js';

/** A fresh record of a Redis 7 incr file, as a capture first sends it; `overrides` on top. */
export function aofFileRecord(
  fileNo: number,
  overrides: Partial<AofFileRecord> = {},
): AofFileRecord {
  return {
    fileNo,
    name: 'appendonly.aof.1.incr.aof',
    kind: 'incr',
    seq: 1,
    ino: 42,
    chunkStart: 0,
    firstSeenAt: Date.now(),
    capturedEnd: 0,
    chunks: 0,
    last: null,
    ended: null,
    ...overrides,
  };
}
