import { RfError } from '../errors.js';
import { aofKeys } from '../store/aof-keys.js';
import { keys, prefixEnd } from '../store/keys.js';
import type { KvRange, KvReader } from '../store/store.js';
import type { PackEntry } from './layout.js';

/**
 * The archive a command reads from the bucket: the manifest's records (in a private store) and
 * the records of the packs it asked for, which arrive in the background. A read waits only for
 * the packs whose key ranges it reaches, so a restore replays the first segments while the
 * later packs are still downloading. A pack's records are written to one spill file as they
 * arrive and read back from it by offset: what is held in memory is their keys, not their bytes.
 */

/** Where a pack's records can lie before it is read: from `lo` to before `hi`. */
interface Span {
  lo: string;
  hi: string;
}

/** One record of an arrived pack: its key and where its value lies in the spill file. */
export type Slot = [key: string, at: number, length: number];

export interface PackState {
  entry: PackEntry;
  spans: Span[];
  /** Resolves to the pack's records in key order once it has arrived and been checked. */
  arrived: Promise<Slot[]>;
}

const after = (key: string) => `${key}\x00`;

/** The key ranges a pack's records can lie in, from its manifest entry alone. */
export function packSpans(p: PackEntry): Span[] {
  const src = p.name.slice(0, p.name.indexOf('/'));
  if (p.kind === 'aof') {
    return [
      { lo: aofKeys.chunk(src, p.group, p.start), hi: aofKeys.chunk(src, p.group, p.end) },
      { lo: aofKeys.data(src, p.group, p.start), hi: aofKeys.data(src, p.group, p.end) },
    ];
  }
  const tl = p.group;
  const byOffset = (key: (src: string, tl: number, start: number) => string): Span => ({
    lo: key(src, tl, p.start),
    hi: after(key(src, tl, p.end)),
  });
  return [
    byOffset(keys.segment),
    byOffset(keys.data),
    byOffset(keys.keyIndex),
    // A timeline's times never go back (store/writer.ts holds them), so a pack's time-index
    // records lie between its first and last time; checkSpans refuses one that does not.
    { lo: keys.timeFrom(src, tl, p.firstTime), hi: prefixEnd(keys.timeFrom(src, tl, p.lastTime)) },
  ];
}

/** Refuses a pack holding a record outside the ranges its manifest entry gives it. */
export function checkSpans(p: PackEntry, spans: readonly Span[], key: string): void {
  if (spans.some((s) => s.lo <= key && key < s.hi)) return;
  throw new RfError('RF_CORRUPT', `the bucket object ${p.name} holds a record outside its range`, {
    details: { object: p.name, key },
    hint: 'run `rf verify --repo …` to list every damaged object',
  });
}

interface Bounds {
  low: string | undefined;
  lowOpen: boolean;
  high: string | undefined;
  highOpen: boolean;
}

function bounds(range: KvRange): Bounds {
  return {
    low: range.gt ?? range.gte,
    lowOpen: range.gt !== undefined,
    high: range.lt ?? range.lte,
    highOpen: range.lt !== undefined,
  };
}

function inside(b: Bounds, key: string): boolean {
  if (b.low !== undefined && (b.lowOpen ? key <= b.low : key < b.low)) return false;
  if (b.high !== undefined && (b.highOpen ? key >= b.high : key > b.high)) return false;
  return true;
}

function meets(b: Bounds, s: Span): boolean {
  if (b.low !== undefined && s.hi <= b.low) return false;
  if (b.high !== undefined && (b.highOpen ? s.lo >= b.high : s.lo > b.high)) return false;
  return true;
}

/** One source of keys in order: the next key, or undefined when it has none left. */
interface Cursor {
  key(): string | undefined;
  take(): Promise<[string, Buffer]>;
}

function slotCursor(slots: Slot[], b: Bounds, reverse: boolean, read: ReadAt): Cursor {
  const inRange = slots.filter(([k]) => inside(b, k));
  if (reverse) inRange.reverse();
  let i = 0;
  return {
    key: () => inRange[i]?.[0],
    take: async () => {
      const [key, at, length] = inRange[i++]!;
      return [key, await read(at, length)];
    },
  };
}

async function iteratorCursor(it: AsyncIterator<[string, Buffer]>): Promise<Cursor> {
  let head = await it.next();
  return {
    key: () => (head.done === true ? undefined : head.value[0]),
    take: async () => {
      const value = head.value as [string, Buffer];
      head = await it.next();
      return value;
    },
  };
}

export type ReadAt = (at: number, length: number) => Promise<Buffer>;

/**
 * The manifest's records and the packs' records as one reader, in key order. Before a key is
 * given out, every pack that could hold a key before it (after it, reading in reverse) has
 * arrived: the merge is the order a store holding all of them would give.
 */
export class PackedReader implements KvReader {
  constructor(
    private readonly base: KvReader,
    private readonly packs: () => readonly PackState[],
    /** A value's bytes from where its slot says they lie. */
    private readonly readAt: ReadAt,
    private readonly closeAll: () => Promise<void>,
  ) {}

  get dir(): string {
    return this.base.dir;
  }

  async get(key: string): Promise<Buffer | undefined> {
    for (const p of this.packs()) {
      if (!p.spans.some((s) => s.lo <= key && key < s.hi)) continue;
      const slots = await p.arrived;
      const slot = slots[lowerBound(slots, key)];
      if (slot !== undefined && slot[0] === key) return this.readAt(slot[1], slot[2]);
    }
    return this.base.get(key);
  }

  async *entries(range: KvRange): AsyncIterable<[string, Buffer]> {
    const b = bounds(range);
    const reverse = range.reverse === true;
    // Each pack once, at the edge of its first span the walk reaches.
    const edge = (p: PackState) => {
      const met = p.spans.filter((s) => meets(b, s)).map((s) => (reverse ? s.hi : s.lo));
      met.sort(cmp);
      return reverse ? met.at(-1) : met[0];
    };
    const waiting = this.packs()
      .map((p) => ({ p, edge: edge(p) }))
      .filter((w): w is { p: PackState; edge: string } => w.edge !== undefined)
      .sort((x, y) => (reverse ? cmp(y.edge, x.edge) : cmp(x.edge, y.edge)));
    const limit = range.limit ?? -1;
    const it = this.base.entries({ ...range, limit: -1 })[Symbol.asyncIterator]();
    try {
      const cursors = [await iteratorCursor(it)];
      let given = 0;
      for (;;) {
        if (limit >= 0 && given >= limit) return;
        let next: Cursor | undefined;
        for (const c of cursors) {
          const k = c.key();
          if (k === undefined) continue;
          const nk = next?.key();
          if (nk === undefined || (reverse ? k > nk : k < nk)) next = c;
        }
        const at = next?.key();
        // A pack whose span starts before the next key (after it, in reverse) may hold one first.
        const first = waiting[0];
        if (
          first !== undefined &&
          (at === undefined || (reverse ? first.edge > at : first.edge <= at))
        ) {
          waiting.shift();
          cursors.push(slotCursor(await first.p.arrived, b, reverse, this.readAt));
          continue;
        }
        if (next === undefined) return;
        yield await next.take();
        given++;
      }
    } finally {
      await it.return?.();
    }
  }

  close(): Promise<void> {
    return this.closeAll();
  }
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The first slot whose key is not below `key`. */
function lowerBound(slots: readonly Slot[], key: string): number {
  let lo = 0;
  let hi = slots.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (slots[mid]![0] < key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
