import { prefixEnd } from '../store/keys.js';
import { json, type KvRange, type KvReader } from '../store/store.js';
import type { KeyIndexRepair } from './key-index.js';
import type { Location, Problem, ProblemCode } from './problems.js';

/** What one verify run has read so far: counts for the report, bytes for the progress bar. */
export interface VerifyCounters {
  timelines: number;
  segments: number;
  entries: number;
  streamBytes: number;
  bases: number;
  baseBytes: number;
  aofFiles: number;
  chunks: number;
  chunkBytes: number;
  aofBases: number;
  aofBaseBytes: number;
  /** Writes the cross-check found in both captures. */
  compared: number;
  /** Segments whose key index was checked against their writes. */
  keyIndexes: number;
}

export function emptyCounters(): VerifyCounters {
  return {
    timelines: 0,
    segments: 0,
    entries: 0,
    streamBytes: 0,
    bases: 0,
    baseBytes: 0,
    aofFiles: 0,
    chunks: 0,
    chunkBytes: 0,
    aofBases: 0,
    aofBaseBytes: 0,
    compared: 0,
    keyIndexes: 0,
  };
}

export interface VerifyProgress {
  /** Bytes read so far and bytes to read in all (segments, bases, chunks, cross-check). */
  done: number;
  total: number;
  phase: string;
}

/** Shared by the checks of one source. */
export class SourceCheck {
  readonly problems: Problem[] = [];
  /** Key indexes to add, rebuild or remove once the source is read (verify/key-index.ts). */
  readonly keyIndexRepairs: KeyIndexRepair[] = [];

  constructor(
    readonly kv: KvReader,
    readonly source: string,
    readonly counters: VerifyCounters,
    readonly progress: VerifyProgress,
  ) {}

  report(
    code: ProblemCode,
    message: string,
    where: Location,
    time: { from: number; until: number } | null = null,
    also?: Location,
  ): void {
    this.problems.push({
      code,
      source: this.source,
      message,
      where,
      time,
      ...(also === undefined ? {} : { also }),
    });
  }

  /** Every record under a prefix, decoded; one that is not JSON is reported, not thrown. */
  async records<T>(prefix: string, range: Omit<KvRange, 'gte' | 'lt'> = {}): Promise<T[]> {
    const out: T[] = [];
    for await (const r of this.recordStream<T>({ gte: prefix, lt: prefixEnd(prefix), ...range })) {
      if (r.value !== undefined) out.push(r.value);
    }
    return out;
  }

  /** Records of a range in key order; unreadable ones are reported and yielded without a value. */
  async *recordStream<T>(range: KvRange): AsyncIterable<{ key: string; value: T | undefined }> {
    for await (const [key, raw] of this.kv.entries(range)) {
      let value: T | undefined;
      try {
        value = json.decode<T>(raw);
      } catch (err) {
        this.report(
          'record-unreadable',
          `the record is not valid JSON: ${(err as Error).message}`,
          {
            key,
          },
        );
      }
      yield { key, value };
    }
  }

  /** The ids found right after `prefix` (`…/seg/<id>/…`), one seek per id: orphan detection. */
  async idsUnder(prefix: string, width: number): Promise<number[]> {
    const ids: number[] = [];
    let from = prefix;
    for (;;) {
      let next: string | undefined;
      for await (const [key] of this.kv.entries({ gte: from, lt: prefixEnd(prefix), limit: 1 })) {
        next = key;
      }
      if (next === undefined) return ids;
      const hex = next.slice(prefix.length, prefix.length + width);
      const id = Number.parseInt(hex, 16);
      if (!Number.isSafeInteger(id)) {
        this.report('record-unreadable', 'a key that does not follow the store layout', {
          key: next,
        });
        return ids;
      }
      ids.push(id);
      from = prefixEnd(`${prefix}${hex}/`);
    }
  }
}

/** One-item lookahead over an async iterable: lets two ordered key ranges be walked in step. */
export class Peekable<T> {
  private readonly it: AsyncIterator<T>;
  private head: IteratorResult<T> | null = null;

  constructor(source: AsyncIterable<T>) {
    this.it = source[Symbol.asyncIterator]();
  }

  async peek(): Promise<T | undefined> {
    this.head ??= await this.it.next();
    return this.head.done ? undefined : this.head.value;
  }

  async take(): Promise<T | undefined> {
    const v = await this.peek();
    this.head = null;
    return v;
  }

  /** Closes the underlying iterator (and the LevelDB iterator behind it) early. */
  async close(): Promise<void> {
    await this.it.return?.();
  }
}
