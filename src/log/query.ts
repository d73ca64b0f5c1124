import { isRfError } from '../errors.js';
import type { Archive } from '../store/archive.js';
import {
  CommandState,
  commandName,
  frameKind,
  Kind,
  nameOf,
  parseArgs,
} from '../store/commands.js';
import { indexedPrefixLength, keyHash, prefixHash } from '../store/key-hash.js';
import { KeyIndex, type KeyProbe } from '../store/key-index.js';
import type { Entry, SegmentMeta } from '../store/types.js';
import { globMatch, literalKey, literalPrefix, literalRuns } from './glob.js';
import { changesEveryKey, keyArgs } from './key-args.js';
import type { CommandKeySpecs } from './key-specs.js';

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

/** Whether the segment's key index rules it out; a missing or damaged index rules nothing out. */
async function indexRulesOut(
  archive: Archive,
  source: string,
  meta: SegmentMeta,
  probe: KeyProbe,
  db: number | undefined,
): Promise<boolean> {
  const stored = await archive.keyIndex(source, meta);
  const index = stored === undefined ? null : KeyIndex.decode(stored);
  return index !== null && !index.mayMatch(probe, db);
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
  const needle = matcher?.needle ?? null;
  const probe = filter.key === undefined ? null : keyProbe(filter.key);
  for (const tl of await archive.timelines(source)) {
    if (tl.lastTime < since || tl.startedAt > until) continue;
    const first =
      window.since === null
        ? undefined
        : await archive.segmentAtTime(source, tl.id, Math.max(0, since));
    if (window.since !== null && first === undefined) continue;
    for await (const meta of archive.segments(source, tl.id, first?.start)) {
      if (meta.firstTime > until) break;
      // Segments committed after the timeline record was read belong to a later query.
      if (meta.start > tl.durableOffset) break;
      if (probe !== null && (await indexRulesOut(archive, source, meta, probe, filter.db))) {
        stats.skipped++;
        continue;
      }
      stats.segments++;
      let entries: Entry[];
      let payloadBytes: number;
      try {
        ({ entries, payloadBytes } = await archive.readSegment(source, meta));
      } catch (err) {
        if (!isRfError(err, 'RF_CHECKSUM') && !isRfError(err, 'RF_CORRUPT')) throw err;
        stats.damaged.push(damage(meta, err.code, err.message));
        continue;
      }
      const state = new CommandState(meta.db, meta.multiAt);
      // Where the needle occurs in the segment's frames: only entries holding one are split.
      const hits = needle === null ? null : needleHits(entries, payloadBytes, needle);
      let hit = 0;
      for (const e of entries) {
        stats.entries++;
        if (e.time > until) break;
        // The kind from the name's bytes: no string is made for a write the filters pass over.
        const kind = frameKind(e.bytes);
        const length = nameLength(e.bytes);
        if (kind === Kind.select || kind === Kind.multi || kind === Kind.exec) {
          state.applyKind(kind, kind === Kind.select ? parseArgs(e.bytes) : [], e.offset);
          continue;
        }
        if (kind !== Kind.write || e.time < since) continue;
        stats.writes++;
        if (filter.command !== undefined && length !== filter.command.length) continue;
        if (hits !== null) {
          const from = e.bytes.byteOffset;
          while (hit < hits.length && hits[hit]! < from) hit++;
          const inside = hit < hits.length && hits[hit]! < from + e.bytes.length;
          if (!inside && !mayChangeEveryKey(e.bytes, length)) continue;
        } else if (needle !== null && e.bytes.indexOf(needle) < 0) {
          if (!mayChangeEveryKey(e.bytes, length)) continue;
        }
        const args = parseArgs(e.bytes);
        const full = nameOf(args[0]);
        if (filter.command !== undefined && full !== filter.command) continue;
        if (filter.db !== undefined && !dbMatches(filter.db, state.db, full, args)) continue;
        if (matcher !== null && !matcher.matches(full, args)) continue;
        stats.matched++;
        yield {
          source,
          timeline: tl.id,
          offset: e.offset,
          time: e.time,
          db: state.db,
          name: full,
          args,
          multiAt: state.multiAt,
        };
      }
    }
  }
}

/** The length of a frame's first bulk string (its command name), read without allocating. */
function nameLength(frame: Buffer): number {
  // *<argc>\r\n$<len>\r\n<name>…
  let i = frame.indexOf(0x24);
  if (i < 0) return 0;
  let n = 0;
  for (i++; i < frame.length; i++) {
    const c = frame[i]!;
    if (c < 0x30 || c > 0x39) break;
    n = n * 10 + (c - 0x30);
  }
  return n;
}

/** FLUSHDB, FLUSHALL and SWAPDB name no key: they match any key pattern. Lengths 6 to 8 only. */
function mayChangeEveryKey(frame: Buffer, length: number): boolean {
  return length >= 6 && length <= 8 && changesEveryKey(commandName(frame));
}

/**
 * Absolute byte positions (in the segment's buffer) where the needle starts, found with one
 * native search over the whole payload instead of one per entry. Null when the entries are not
 * one contiguous view (then each entry is searched on its own).
 */
function needleHits(
  entries: readonly Entry[],
  payloadBytes: number,
  needle: Buffer,
): number[] | null {
  const first = entries[0];
  const last = entries[entries.length - 1];
  if (first === undefined || last === undefined) return [];
  const span = last.bytes.byteOffset + last.bytes.length - first.bytes.byteOffset;
  if (first.bytes.buffer !== last.bytes.buffer || span !== payloadBytes) return null;
  const payload = Buffer.from(first.bytes.buffer, first.bytes.byteOffset, span);
  const hits: number[] = [];
  for (let at = payload.indexOf(needle); at >= 0; at = payload.indexOf(needle, at + 1)) {
    hits.push(first.bytes.byteOffset + at);
  }
  return hits;
}

function damage(meta: SegmentMeta, code: string, message: string): DamagedSegment {
  return { timeline: meta.timeline, start: meta.start, end: meta.end, code, message };
}
