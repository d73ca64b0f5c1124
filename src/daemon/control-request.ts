import { RfError } from '../errors.js';
import { isValidSourceName } from '../store/keys.js';
import type { KvRange } from '../store/store.js';
import type { ControlRequest } from './control.js';

/**
 * What the control socket takes from a client, and the bounds it keeps while taking it. A
 * request is a key or a key range: a few hundred bytes. Anything far larger is not a reader
 * of rf's, and buffering it would cost the daemon that holds the capture its memory (a 200 MB
 * line with no newline once took it to 504 MB).
 */
export const CONTROL_LIMITS = {
  requestBytes: 64 * 1024,
  /** Requests a client may send ahead of their answers before the daemon stops reading it. */
  pipelined: 4,
  /** A request begun and not finished within this long holds a connection for nothing. */
  partialRequestMs: 10_000,
  /** Concurrent control connections: readers use one each, and a few run at once. */
  connections: 64,
};
export type ControlLimits = typeof CONTROL_LIMITS;

/** Segments one reindex request may name: its line stays well within requestBytes. */
export const REINDEX_MAX = 512;

const RANGE_BOUNDS = ['gt', 'gte', 'lt', 'lte'] as const;

function refuse(message: string): RfError {
  return new RfError('RF_USAGE', `control request refused: ${message}`);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function parseRange(v: unknown): KvRange {
  if (!isObject(v)) throw refuse('range is not an object');
  const range: KvRange = {};
  for (const bound of RANGE_BOUNDS) {
    const b = v[bound];
    if (b === undefined) continue;
    if (typeof b !== 'string') throw refuse(`range.${bound} is not a string`);
    range[bound] = b;
  }
  if (v.reverse !== undefined) {
    if (typeof v.reverse !== 'boolean') throw refuse('range.reverse is not a boolean');
    range.reverse = v.reverse;
  }
  if (v.limit !== undefined) {
    if (!Number.isSafeInteger(v.limit)) throw refuse('range.limit is not an integer');
    range.limit = v.limit as number;
  }
  return range;
}

/** The request in a line, checked field by field; an RF_USAGE error names what is wrong. */
export function parseRequest(line: string): ControlRequest {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    throw refuse('not a JSON line');
  }
  if (!isObject(v)) throw refuse('not a JSON object');
  const { id, op } = v;
  if (!Number.isSafeInteger(id)) throw refuse('id is not an integer');
  const n = id as number;
  switch (op) {
    case 'get':
      if (typeof v.key !== 'string') throw refuse('key is not a string');
      return { id: n, op, key: v.key };
    case 'entries': {
      const range = parseRange(v.range);
      if (v.maxBytes === undefined) return { id: n, op, range };
      if (!Number.isSafeInteger(v.maxBytes)) throw refuse('maxBytes is not an integer');
      return { id: n, op, range, maxBytes: v.maxBytes as number };
    }
    case 'status':
      return { id: n, op };
    case 'reindex': {
      const { source, segments } = v;
      if (typeof source !== 'string' || !isValidSourceName(source))
        throw refuse('source is not a source name');
      if (!Array.isArray(segments) || segments.length > REINDEX_MAX)
        throw refuse(`segments is not a list of at most ${REINDEX_MAX}`);
      const refs = segments.map((g: unknown) => {
        const ok =
          isObject(g) &&
          Number.isSafeInteger(g.timeline) &&
          Number.isSafeInteger(g.start) &&
          (g.timeline as number) >= 0 &&
          (g.start as number) >= 0;
        if (!ok) throw refuse('a segment is not {timeline, start}');
        return { timeline: g.timeline as number, start: g.start as number };
      });
      return { id: n, op, source, segments: refs };
    }
    default:
      throw refuse(`unknown op ${JSON.stringify(String(op)).slice(0, 40)}`);
  }
}

/** The id of a line that did not parse as a request, when one can be read from it. */
export function idOf(line: string): number {
  try {
    const v: unknown = JSON.parse(line);
    if (isObject(v) && Number.isSafeInteger(v.id)) return v.id as number;
  } catch {
    // not JSON: no id to answer under
  }
  return -1;
}

/**
 * Splits a byte stream into lines no longer than `maxBytes`, never holding more than one
 * unfinished line; `push` returns null once a line runs past the limit.
 */
export class RequestLines {
  private partial: Buffer[] = [];
  private partialBytes = 0;

  constructor(private readonly maxBytes: number) {}

  get pending(): boolean {
    return this.partialBytes > 0;
  }

  push(chunk: Buffer): string[] | null {
    const lines: string[] = [];
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(10, start);
      const end = nl === -1 ? chunk.length : nl;
      if (this.partialBytes + end - start > this.maxBytes) return null;
      if (nl === -1) break;
      const piece = chunk.subarray(start, nl);
      const whole = this.partial.length === 0 ? piece : Buffer.concat([...this.partial, piece]);
      lines.push(whole.toString('utf8'));
      this.partial = [];
      this.partialBytes = 0;
      start = nl + 1;
    }
    if (start < chunk.length) {
      this.partial.push(chunk.subarray(start));
      this.partialBytes += chunk.length - start;
    }
    return lines;
  }
}
