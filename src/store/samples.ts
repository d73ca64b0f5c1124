import type { OffsetSample } from '../bounds/clock.js';
import type { ImpreciseWindow } from '../bounds/windows.js';
import { isReplid, keys, prefixEnd } from './keys.js';
import { type BatchOp, json, type KvReader, type Store } from './store.js';

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

/**
 * Retention for the evidence of times: the samples answered before `windowStart` and the
 * windows that end before it bound no write a restore in the window can reach. Samples of a
 * replid are stored in offset order, which is time order, so each replid is read from its
 * oldest sample only as far as the first one to keep. The newest sample of each replid stays
 * (it bounds what a restarted rf listen receives next), so an idle master loses nothing.
 */
export async function pruneTimeEvidence(
  store: Store,
  source: string,
  windowStart: number,
): Promise<number> {
  const ops: BatchOp[] = [];
  const all = keys.samplePrefix(source);
  let from = all;
  for (;;) {
    let replidPrefix: string | null = null;
    let previous: string | null = null;
    for await (const [k, v] of store.entries({ gte: from, lt: prefixEnd(all) })) {
      const prefix = k.slice(0, k.lastIndexOf('/') + 1);
      if (replidPrefix === null) replidPrefix = prefix;
      if (prefix !== replidPrefix) break;
      const [, answeredAt] = json.decode<[number, number]>(v);
      if (answeredAt >= windowStart) break;
      // Only a sample with a later one after it goes: the last one of a replid stays.
      if (previous !== null) ops.push({ type: 'del', key: previous });
      previous = k;
    }
    if (replidPrefix === null) break;
    from = prefixEnd(replidPrefix);
  }
  const windowsPrefix = keys.imprecisePrefix(source);
  for await (const [k, v] of store.entries({ gte: windowsPrefix, lt: prefixEnd(windowsPrefix) })) {
    if (json.decode<ImpreciseWindow>(v).until < windowStart) ops.push({ type: 'del', key: k });
  }
  for (let i = 0; i < ops.length; i += 1000) await store.batch(ops.slice(i, i + 1000));
  return ops.length;
}
