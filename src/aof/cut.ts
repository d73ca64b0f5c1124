import { isRfError, RfError } from '../errors.js';
import { FrameScanner } from '../resp/frames.js';

/** Where a chunk ends and what it holds, found by scanning an AOF's bytes for whole frames. */
export interface Cut {
  /** Bytes of whole frames from the start of the buffer: the chunk's length; 0 when none is whole. */
  length: number;
  /** Commands among those frames (annotations are not commands). */
  commands: number;
  /** First and last `#TS:<unix seconds>` annotation among them (aof.c genAofTimestampAnnotationIfNeeded). */
  firstTs: number | null;
  lastTs: number | null;
}

const TS = /^TS:(\d+)$/;

/**
 * Cuts `buf` (the file's bytes from `position`) after the last whole frame that keeps the chunk
 * within `maxBytes`; a single frame larger than `maxBytes` makes a chunk of its own, since chunks
 * end on command boundaries. A frame that is not whole yet (a torn tail) is left for later.
 * Bytes that are not RESP are RF_CORRUPT, naming the file and the byte.
 */
export function cutFrames(buf: Buffer, position: number, maxBytes: number, file: string): Cut {
  const scanner = new FrameScanner({ startAt: position, annotations: true });
  let frames: ReturnType<FrameScanner['push']>;
  try {
    frames = scanner.push(buf);
  } catch (err) {
    if (!isRfError(err, 'RF_PROTOCOL')) throw err;
    const at = (err.details.frameStart as number | undefined) ?? position;
    throw new RfError(
      'RF_CORRUPT',
      `${file} holds bytes that are not Redis commands at byte ${at}`,
      {
        details: { file, position: at, problem: err.message },
        hint: 'check the file with `redis-check-aof`; rf stops here rather than ship what Redis could not load',
        cause: err,
      },
    );
  }
  const cut: Cut = { length: 0, commands: 0, firstTs: null, lastTs: null };
  for (const frame of frames) {
    const end = frame.start + frame.length - position;
    if (end > maxBytes && cut.length > 0) break;
    cut.length = end;
    if (frame.kind === 'command') {
      cut.commands++;
    } else {
      const m = TS.exec(frame.text);
      if (m) {
        const ts = Number(m[1]);
        cut.firstTs ??= ts;
        cut.lastTs = ts;
      }
    }
  }
  return cut;
}
