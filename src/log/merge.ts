import type { LogWrite } from './query.js';

/**
 * Writes of several sources (the shards of a cluster) as one stream in capture-time order, each
 * source's own order kept. Every source is read one write ahead; all are closed at the end.
 */
export async function* mergeByTime(
  streams: ReadonlyArray<AsyncIterable<LogWrite>>,
): AsyncGenerator<LogWrite> {
  const its = streams.map((s) => s[Symbol.asyncIterator]());
  try {
    const heads = await Promise.all(its.map((it) => it.next()));
    for (;;) {
      let best = -1;
      for (const [i, h] of heads.entries()) {
        if (h.done) continue;
        const b = best < 0 ? undefined : heads[best];
        if (b === undefined || b.done || h.value.time < b.value.time) best = i;
      }
      if (best < 0) return;
      const head = heads[best]!;
      if (head.done) return;
      yield head.value;
      heads[best] = await its[best]!.next();
    }
  } finally {
    await Promise.all(its.map((it) => it.return?.()));
  }
}
