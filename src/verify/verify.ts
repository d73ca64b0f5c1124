import { Archive } from '../store/archive.js';
import { AofArchive, type AofGap } from '../store/chunks.js';
import { keys, prefixEnd } from '../store/keys.js';
import { json, type KvReader } from '../store/store.js';
import { type Gap, restorableRanges } from '../store/summary.js';
import type { SourceRecord, Timeline } from '../store/types.js';
import { checkAof } from './aof.js';
import { checkBases } from './bases.js';
import { SourceCheck, type VerifyCounters, type VerifyProgress } from './context.js';
import { crossCheck, streamRuns } from './cross-check.js';
import type { KeyIndexRepair } from './key-index.js';
import type { Problem } from './problems.js';
import { checkState, checkTimeline, readStreamIndex } from './stream.js';

/**
 * `rf verify`: re-reads the whole archive of a source and lists what is wrong with it. It
 * changes nothing here: the key index repairs it finds (verify/key-index.ts) are returned, for
 * the store's owner to apply. Problems are collected, not thrown: one bad segment must not hide the next.
 */

export interface TimelineSummary {
  id: number;
  replid: string;
  from: number;
  until: number;
  /** Offsets the timeline holds: baseOffset + 1 .. durableOffset. */
  firstOffset: number;
  durableOffset: number;
  segments: number;
}

export interface SourceReport {
  name: string;
  timelines: TimelineSummary[];
  /** Gaps on record between timelines: facts, not problems. */
  gaps: Gap[];
  problems: Problem[];
  /** Key indexes to add, rebuild or remove: the caller has the store's owner apply them. */
  keyIndexRepairs: KeyIndexRepair[];
  aof: {
    files: { fileNo: number; name: string; chunks: number; bytes: number; ended: boolean }[];
    /** Bytes the AOF capture recorded it could not take: facts, like the stream's gaps. */
    gaps: AofGap[];
  };
  /** Each stream stretch compared with an AOF stretch that shares its time. */
  crossCheck: {
    timeline: number;
    fromOffset: number;
    untilOffset: number;
    aofFiles: string[];
    aligned: boolean;
    differs: boolean;
    compared: number;
  }[];
}

/** A source to verify; `recordProblem` says why its `src/<name>` record could not be used. */
export interface SourceToVerify {
  source: SourceRecord;
  recordProblem: 'missing' | 'unreadable' | null;
}

/**
 * The sources on record, plus any name that has data under `s/<name>/` but no readable record:
 * `rf info` and `rf restore` cannot see those, so verify reports them and checks their data too.
 */
export async function sourcesToVerify(kv: KvReader): Promise<SourceToVerify[]> {
  const found = new Map<string, SourceToVerify>();
  for await (const [key, raw] of kv.entries({
    gte: keys.sourcesPrefix,
    lt: prefixEnd(keys.sourcesPrefix),
  })) {
    const name = key.slice(keys.sourcesPrefix.length);
    try {
      found.set(name, { source: json.decode<SourceRecord>(raw), recordProblem: null });
    } catch {
      found.set(name, { source: { name, url: '', createdAt: 0 }, recordProblem: 'unreadable' });
    }
  }
  let from = 's/';
  for (;;) {
    let next: string | undefined;
    for await (const [key] of kv.entries({ gte: from, lt: prefixEnd('s/'), limit: 1 })) next = key;
    if (next === undefined) break;
    const name = next.slice(2, next.indexOf('/', 2));
    if (!found.has(name)) {
      found.set(name, { source: { name, url: '', createdAt: 0 }, recordProblem: 'missing' });
    }
    from = prefixEnd(keys.sourcePrefix(name));
  }
  return [...found.values()].sort((a, b) => a.source.name.localeCompare(b.source.name));
}

export interface VerifyOptions {
  counters: VerifyCounters;
  progress: VerifyProgress;
}

/** What the progress bar counts to: every byte verify will read, from the records. */
export async function plannedBytes(
  kv: KvReader,
  sources: readonly SourceRecord[],
): Promise<number> {
  const archive = new Archive(kv);
  let total = 0;
  for (const s of sources) {
    // An unreadable record is reported by the run itself; the bar then just ends early.
    const [timelines, bases] = await Promise.all([
      archive.timelines(s.name).catch(() => []),
      archive.bases(s.name).catch(() => []),
    ]);
    for (const t of timelines) total += t.bytes;
    for (const b of bases) total += b.bytes;
    total += (await new AofArchive(kv).stats(s.name).catch(() => ({ bytes: 0 }))).bytes;
  }
  return total;
}

export async function verifySource(
  kv: KvReader,
  source: SourceRecord,
  options: VerifyOptions,
  recordProblem: SourceToVerify['recordProblem'] = null,
): Promise<SourceReport> {
  const check = new SourceCheck(kv, source.name, options.counters, options.progress);
  if (recordProblem !== null) {
    check.report(
      recordProblem === 'missing' ? 'source-missing' : 'record-unreadable',
      recordProblem === 'missing'
        ? `the store holds data for source ${source.name} but no source record: rf info and rf restore do not see it`
        : `the source record of ${source.name} is not valid JSON: rf info and rf restore cannot use it`,
      { key: keys.source(source.name) },
    );
  }
  const { timelines, bases, pruned, seen } = await readStreamIndex(check);
  options.counters.timelines += timelines.length;
  for (const t of timelines) {
    options.progress.phase = `${source.name}: timeline ${t.id}`;
    await checkTimeline(check, t, pruned.get(t.id));
  }
  await checkState(check, timelines);
  options.progress.phase = `${source.name}: bases`;
  await checkBases(check, timelines, bases, pruned);
  const aof = await checkAof(check);
  const pairs =
    aof.runs.length === 0
      ? []
      : await crossCheck(check, await streamRuns(check, timelines), aof.runs);
  return {
    name: source.name,
    timelines: timelines.map(summarize),
    gaps: restorableRanges(timelines, bases, seen).gaps,
    problems: check.problems,
    keyIndexRepairs: check.keyIndexRepairs,
    aof: {
      files: aof.files.map((f) => ({
        fileNo: f.fileNo,
        name: f.name,
        chunks: f.chunks,
        bytes: f.capturedEnd - f.chunkStart,
        ended: f.ended !== null,
      })),
      gaps: aof.gaps,
    },
    crossCheck: pairs.map((p) => ({
      timeline: p.stream.timeline.id,
      fromOffset: p.stream.from,
      untilOffset: p.stream.until,
      aofFiles: [...new Set(p.aof.pieces.map((x) => x.record.name))],
      aligned: p.aligned,
      compared: p.compared,
      differs: p.differs,
    })),
  };
}

function summarize(t: Timeline): TimelineSummary {
  return {
    id: t.id,
    replid: t.replid,
    from: t.startedAt,
    until: t.lastTime,
    firstOffset: t.baseOffset + 1,
    durableOffset: t.durableOffset,
    segments: t.segments,
  };
}
