import { isRfError } from '../errors.js';
import { globMatch, literalKey, literalPrefix, literalRuns } from '../resp/glob.js';
import { changesEveryKey, keyArgs } from '../resp/key-args.js';
import type { CommandKeySpecs } from '../resp/key-specs.js';
import type { Archive } from '../store/archive.js';
import { checkSegmentData, forEachEntry } from '../store/codec.js';
import {
  CommandState,
  commandName,
  frameKindAt,
  Kind,
  nameOf,
  parseArgs,
} from '../store/commands.js';
import { indexedPrefixLength, keyHash, prefixHash } from '../store/key-hash.js';
import { KeyIndex, type KeyProbe } from '../store/key-index.js';
import type { SegmentMeta } from '../store/types.js';

/**
 * `rf log`: the writes of a time window, in stream order, filtered by key pattern, db and
 * command. Each timeline is entered with one seek in its time index (the first segment whose
 * last write is at or after `since`), never by scanning from the start, and left at the first
 * segment that begins after `until`.
 */

export interface LogWindow {
  /** Inclusive bounds in ms since the epoch; null is open. */
  since: number | null;
  until: number | null;
}

export interface LogFilter {
  /** A Redis glob matched against the key arguments (see key-args.ts). */
  key?: Buffer;
  db?: number;
  /** Lower-cased command name. */
  command?: string;
}

export interface LogWrite {
  source: string;
  timeline: number;
  offset: number;
  time: number;
  /** The db the write applies to (the SELECT in effect). */
  db: number;
  /** Lower-cased command name. */
  name: string;
  args: Buffer[];
  /** Offset of the MULTI this write is queued in, or null outside a transaction. */
  multiAt: number | null;
}

export interface DamagedSegment {
  timeline: number;
  start: number;
  end: number;
  code: string;
  message: string;
}

export interface LogStats {
  /** Segments read. */
  segments: number;
  /** Segments of the window the key index showed hold no match: not read. */
  skipped: number;
  entries: number;
  writes: number;
  matched: number;
  damaged: DamagedSegment[];
}

export function emptyLogStats(): LogStats {
  return { segments: 0, skipped: 0, entries: 0, writes: 0, matched: 0, damaged: [] };
}

/** Decides whether a write touches a key matching the pattern. */
export class KeyMatcher {
  private readonly literal: Buffer | null;
  /** A byte string every matching key contains: frames without it are skipped unparsed. */
  readonly needle: Buffer | null;

  constructor(
    private readonly pattern: Buffer,
    private readonly recorded?: CommandKeySpecs,
  ) {
    this.literal = literalKey(pattern);
    const runs = literalRuns(pattern).sort((a, b) => b.length - a.length);
    this.needle = runs[0] ?? null;
  }

  matchesKey(key: Buffer): boolean {
    return this.literal !== null ? key.equals(this.literal) : globMatch(this.pattern, key);
  }

  /** True when one of the command's key arguments matches (FLUSHDB and the like match any). */
  matches(name: string, args: readonly Buffer[]): boolean {
    const spec = keyArgs(name, args, this.recorded);
    switch (spec.kind) {
      case 'every-key':
        return true;
      case 'keys':
        return spec.indices.some((i) => this.matchesKey(args[i]!));
      case 'unknown':
        return args.some((a, i) => i > 0 && this.matchesKey(a));
    }
  }
}

/**
 * What to ask the key index for a pattern: the key itself when it has no wildcard, else the
 * longest indexed prefix every match starts with; null when there is none (`*foo`, `ab*`), and
 * every segment of the window is read.
 */
export function keyProbe(pattern: Buffer): KeyProbe | null {
  const literal = literalKey(pattern);
  if (literal !== null) return { kind: 'key', hash: keyHash(literal, 0, literal.length) };
  const prefix = literalPrefix(pattern);
  const end = indexedPrefixLength(prefix);
  return end === 0 ? null : { kind: 'prefix', hash: prefixHash(prefix, 0, end) };
}

function dbMatches(want: number, db: number, name: string, args: readonly Buffer[]): boolean {
  if (name === 'flushall') return true;
  if (name === 'swapdb') return args.slice(1, 3).some((a) => Number(a.toString('latin1')) === want);
  return db === want;
}

export async function* queryLog(
  archive: Archive,
  source: string,
  window: LogWindow,
  filter: LogFilter,
  stats: LogStats,
): AsyncGenerator<LogWrite> {
  const since = window.since ?? Number.NEGATIVE_INFINITY;
  const until = window.until ?? Number.POSITIVE_INFINITY;
  const matcher =
    filter.key === undefined
      ? null
      : new KeyMatcher(filter.key, await archive.commandSpecs(source));
  const probe = filter.key === undefined ? null : keyProbe(filter.key);
  const scan: SegmentScan = { source, filter, matcher, since, until, stats };
  for (const tl of await archive.timelines(source)) {
    if (tl.lastTime < since || tl.startedAt > until) continue;
    const first =
      window.since === null
        ? undefined
        : await archive.segmentAtTime(source, tl.id, Math.max(0, since));
    if (window.since !== null && first === undefined) continue;
    // The key indexes are read in step with the metas, with one iterator: one seek, not one
    // lookup per segment.
    const indexes =
      probe === null && matcher?.needle == null
        ? null
        : archive.keyIndexes(source, tl.id, first?.start ?? 0)[Symbol.asyncIterator]();
    let head = indexes === null ? null : await indexes.next();
    try {
      for await (const meta of archive.segments(source, tl.id, first?.start)) {
        if (meta.firstTime > until) break;
        // Segments committed after the timeline record was read belong to a later query.
        if (meta.start > tl.durableOffset) break;
        let index: KeyIndex | null = null;
        if (indexes !== null && head !== null) {
          while (!head.done && head.value[0] < meta.start) head = await indexes.next();
          if (!head.done && head.value[0] === meta.start) index = KeyIndex.decode(head.value[1]);
        }
        // A segment the window holds whole is passed over when its index rules the key out
        // (its writes still count); one the window cuts is read, so the count stays exact.
        const whole = meta.firstTime >= since && meta.lastTime <= until;
        if (index !== null && probe !== null && whole && !index.mayMatch(probe, filter.db)) {
          stats.skipped++;
          stats.writes += meta.writes;
          continue;
        }
        stats.segments++;
        const found: LogWrite[] = [];
        // A whole segment whose index says no write of it changes every key holds matches only
        // where the pattern's literal bytes are: the entries past the last of them are not read.
        const keyed = whole && index !== null && !index.everyKey;
        try {
          const { data, where } = await archive.segmentData(source, meta);
          scanSegment(scan, tl.id, meta, data, where, keyed, found);
        } catch (err) {
          if (!isRfError(err, 'RF_CHECKSUM') && !isRfError(err, 'RF_CORRUPT')) throw err;
          stats.damaged.push(damage(meta, err.code, err.message));
          continue;
        }
        yield* found;
      }
    } finally {
      await indexes?.return?.();
    }
  }
}

interface SegmentScan {
  source: string;
  filter: LogFilter;
  matcher: KeyMatcher | null;
  since: number;
  until: number;
  stats: LogStats;
}

/**
 * The matching writes of one segment, checked first (RF_CHECKSUM, RF_CORRUPT). Entries are read
 * where they lie in the stored value: only those that may match are split into arguments. A
 * `keyed` segment is one the window holds whole and whose writes all name their keys (its index
 * says so): its writes are counted from its meta, and its entries are read only up to the last
 * place the pattern's literal bytes occur, none when they do not.
 */
function scanSegment(
  scan: SegmentScan,
  timeline: number,
  meta: SegmentMeta,
  data: Buffer,
  where: string,
  keyed: boolean,
  out: LogWrite[],
): void {
  const { filter, matcher, since, until, stats } = scan;
  const needle = matcher?.needle ?? null;
  const state = new CommandState(meta.db, meta.multiAt);
  const headless = keyed && needle !== null;
  // The table starts the value, the frames follow it: a search from the start finds them all.
  let hits: number[] | null = headless ? needleHits(data, 0, needle) : null;
  let hit = 0;
  const lastHit = hits === null ? Number.POSITIVE_INFINITY : (hits[hits.length - 1] ?? -1);
  if (headless) {
    stats.writes += meta.writes;
    stats.entries += meta.count;
    if (lastHit < 0) {
      checkSegmentData(data, meta, where);
      return;
    }
  }
  forEachEntry(data, meta, where, (offset, time, pos, length) => {
    if (pos > lastHit) return false;
    if (hits === null && needle !== null) hits = needleHits(data, pos, needle);
    if (!headless) stats.entries++;
    if (time > until) return false;
    // The kind from the name's bytes: no string is made for a write the filters pass over.
    const kind = frameKindAt(data, pos);
    if (kind === Kind.select || kind === Kind.multi || kind === Kind.exec) {
      const args = kind === Kind.select ? parseArgs(data.subarray(pos, pos + length)) : [];
      state.applyKind(kind, args, offset);
      return true;
    }
    if (kind !== Kind.write || time < since) return true;
    if (!headless) stats.writes++;
    const nameLen = nameLength(data, pos);
    if (filter.command !== undefined && nameLen !== filter.command.length) return true;
    if (hits !== null) {
      while (hit < hits.length && hits[hit]! < pos) hit++;
      const inside = hit < hits.length && hits[hit]! < pos + length;
      if (!inside && !mayChangeEveryKey(data, pos, length, nameLen)) return true;
    }
    const args = parseArgs(data.subarray(pos, pos + length));
    const full = nameOf(args[0]);
    if (filter.command !== undefined && full !== filter.command) return true;
    if (filter.db !== undefined && !dbMatches(filter.db, state.db, full, args)) return true;
    if (matcher !== null && !matcher.matches(full, args)) return true;
    stats.matched++;
    out.push({
      source: scan.source,
      timeline,
      offset,
      time,
      db: state.db,
      name: full,
      args,
      multiAt: state.multiAt,
    });
    return true;
  });
}

/** The length of the first bulk string (the command name) of the frame at buf[pos], read in place. */
function nameLength(buf: Buffer, pos: number): number {
  // *<argc>\r\n$<len>\r\n<name>…
  let i = buf.indexOf(0x24, pos);
  if (i < 0) return 0;
  let n = 0;
  for (i++; i < buf.length; i++) {
    const c = buf[i]!;
    if (c < 0x30 || c > 0x39) break;
    n = n * 10 + (c - 0x30);
  }
  return n;
}

/** FLUSHDB, FLUSHALL and SWAPDB name no key: they match any key pattern. Lengths 6 to 8 only. */
function mayChangeEveryKey(buf: Buffer, pos: number, length: number, nameLen: number): boolean {
  return (
    nameLen >= 6 && nameLen <= 8 && changesEveryKey(commandName(buf.subarray(pos, pos + length)))
  );
}

/** Where the needle starts in buf[from…], found with one native search over the segment. */
function needleHits(buf: Buffer, from: number, needle: Buffer): number[] {
  const hits: number[] = [];
  for (let at = buf.indexOf(needle, from); at >= 0; at = buf.indexOf(needle, at + 1)) hits.push(at);
  return hits;
}

function damage(meta: SegmentMeta, code: string, message: string): DamagedSegment {
  return { timeline: meta.timeline, start: meta.start, end: meta.end, code, message };
}
