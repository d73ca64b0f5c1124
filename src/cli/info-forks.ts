import type { Timeline } from '../store/types.js';
import { isoUtc } from '../time.js';

/**
 * The forks of a source, as `rf info --json` gives them: per timeline that began because its
 * master lacked writes rf holds, the range of those writes on the timeline before it. `held` is
 * false once retention has dropped that timeline (it ended before the window): the master still
 * lost those writes, but rf no longer has them.
 */
export function forksJson(timelines: readonly Timeline[]) {
  const kept = new Set(timelines.map((t) => t.id));
  return timelines.flatMap((t) =>
    t.fork === undefined
      ? []
      : [
          {
            timeline: t.id,
            lostOn: t.fork.timeline,
            replid: t.fork.replid,
            master: t.fork.master,
            offsets: [t.fork.fromOffset, t.fork.untilOffset] as [number, number],
            from: isoUtc(t.fork.from),
            until: isoUtc(t.fork.until),
            writes: t.fork.writes,
            held: kept.has(t.fork.timeline),
          },
        ],
  );
}

/** The same as text lines, indented under their source. */
export function forkLines(timelines: readonly Timeline[], indent: string): string[] {
  return forksJson(timelines).map(
    (f) =>
      `${indent}fork: timeline ${f.lostOn} ${f.held ? 'holds' : 'held (retention has dropped it since)'} ${f.writes} writes (offsets ${f.offsets[0]}..${f.offsets[1]}, ${f.from} .. ${f.until}) that the new master ${f.master} never had; timeline ${f.timeline} follows it`,
  );
}
