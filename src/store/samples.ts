import type { OffsetSample } from '../bounds/clock.js';
import type { ImpreciseWindow } from '../bounds/windows.js';
import { isReplid, keys, prefixEnd } from './keys.js';
import { type BatchOp, json, type KvReader } from './store.js';

/**
 * The master's offset samples, kept with the archive: the evidence an imprecise window's bounds
 * come from, and what a restarted rf listen bounds the first entries it receives by.
 */

/** Puts for these samples; a sample under a replid that is not one (not 40 hex) is left out. */
export function sampleOps(source: string, samples: readonly OffsetSample[]): BatchOp[] {
  const ops: BatchOp[] = [];
  for (const s of samples) {
    if (!isReplid(s.replid)) continue;
    ops.push({
      type: 'put',
      key: keys.sample(source, s.replid, s.offset),
      value: json.encode([s.sentAt, s.answeredAt]),
    });
  }
  return ops;
}

/** The samples of a replid from the last one below `offset` on: what bounds entries from there. */
export async function samplesFrom(
  kv: KvReader,
  source: string,
  replid: string,
  offset: number,
): Promise<OffsetSample[]> {
  if (!isReplid(replid)) return [];
  const prefix = keys.samplePrefix(source, replid);
  let gte = keys.sample(source, replid, offset);
  for await (const [k] of kv.entries({ gte: prefix, lt: gte, reverse: true, limit: 1 })) gte = k;
  const out: OffsetSample[] = [];
  for await (const [k, v] of kv.entries({ gte, lt: prefixEnd(prefix) })) {
    const [sentAt, answeredAt] = json.decode<[number, number]>(v);
    out.push({ replid, offset: Number.parseInt(k.slice(prefix.length), 16), sentAt, answeredAt });
  }
  return out;
}

export function windowOp(source: string, w: ImpreciseWindow): BatchOp {
  return {
    type: 'put',
    key: keys.imprecise(source, w.timeline, w.firstOffset),
    value: json.encode(w),
  };
}
