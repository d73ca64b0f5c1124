import type { Archive } from './archive.js';
import { frameKind, Kind } from './commands.js';
import type { Timeline } from './types.js';

/** How far back from the end `lastWrite` looks for a segment holding a write (not a PING). */
const LAST_WRITE_SEGMENTS = 64;

/**
 * The capture time of the last data write: the newest segment that counts a write, read to find
 * the write itself. A master's PING every 10 s would otherwise make an idle source look busy.
 */
export async function lastDataWrite(
  archive: Archive,
  source: string,
  timelines: readonly Timeline[],
): Promise<number | null> {
  for (const t of [...timelines].reverse()) {
    let before = t.lastTime;
    for (let step = 0; step < LAST_WRITE_SEGMENTS; step++) {
      const seg = await archive.segmentBeforeTime(source, t.id, before);
      if (seg === undefined || seg.start > t.durableOffset) break;
      if (seg.writes > 0) {
        const { entries } = await archive.readSegment(source, seg);
        for (let i = entries.length - 1; i >= 0; i--) {
          const e = entries[i]!;
          if (frameKind(e.bytes) === Kind.write) return e.time;
        }
      }
      if (seg.firstTime <= t.startedAt) break;
      before = seg.firstTime - 1;
    }
  }
  return null;
}
