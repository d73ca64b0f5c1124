import net from 'node:net';
import { isRfError, RfError } from '../errors.js';
import type { SegmentRef } from '../store/reindex.js';
import type { KvRange, KvReader } from '../store/store.js';
import type { ControlReply, ControlRequest } from './control.js';
import { REINDEX_MAX } from './control-request.js';

/** A reply line and the raw bytes that followed it (empty when it announced none). */
interface Received {
  head: ControlReply;
  body: Buffer;
}

type Pending = { resolve: (r: Received) => void; reject: (e: Error) => void };
type RequestBody = ControlRequest extends infer R
  ? R extends { id: number }
    ? Omit<R, 'id'>
    : never
  : never;

const EMPTY = Buffer.alloc(0);

/**
 * A reply that is not what was asked for: the daemon on the other end is not this rf's (another
 * version) or the connection carries something else. An outcome to report, not an rf bug.
 */
function malformed(what: string, details: Record<string, unknown> = {}): RfError {
  return new RfError('RF_PROTOCOL', `the rf daemon sent a malformed reply: ${what}`, {
    details,
    hint: 'run the same rf version as the `rf listen` on this store (restart it after an upgrade)',
  });
}

/**
 * Splits what the daemon sends into replies: a JSON line, then as many raw bytes as its `body`
 * says. Chunks are kept as they came and joined once per reply.
 */
class ReplyReader {
  private chunks: Buffer[] = [];
  private length = 0;
  private head: ControlReply | null = null;

  constructor(private readonly onReply: (r: Received) => void) {}

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.length += chunk.length;
    for (;;) {
      if (this.head === null) {
        const nl = this.indexOfNewline();
        if (nl === -1) return;
        const line = this.take(nl + 1);
        const text = line.toString('utf8', 0, nl);
        try {
          this.head = JSON.parse(text) as ControlReply;
        } catch {
          throw malformed('a reply line that is not JSON', { line: text.slice(0, 200) });
        }
      }
      const need = 'body' in this.head ? (this.head.body ?? 0) : 0;
      if (this.length < need) return;
      const body = need === 0 ? EMPTY : this.take(need);
      const head = this.head;
      this.head = null;
      this.onReply({ head, body });
    }
  }

  private indexOfNewline(): number {
    let base = 0;
    for (const c of this.chunks) {
      const i = c.indexOf(10);
      if (i !== -1) return base + i;
      base += c.length;
    }
    return -1;
  }

  /** The first `n` buffered bytes, as one Buffer. */
  private take(n: number): Buffer {
    const first = this.chunks[0]!;
    let out: Buffer;
    if (first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
    } else {
      out = Buffer.allocUnsafe(n);
      let at = 0;
      while (at < n) {
        const c = this.chunks[0]!;
        const k = Math.min(c.length, n - at);
        c.copy(out, at, 0, k);
        at += k;
        if (k === c.length) this.chunks.shift();
        else this.chunks[0] = c.subarray(k);
      }
    }
    this.length -= n;
    return out;
  }
}

/** Reads a store through the `rf listen` that owns it. */
export class RemoteKv implements KvReader {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private broken: Error | null = null;

  private constructor(
    readonly dir: string,
    private readonly socket: net.Socket,
  ) {
    const replies = new ReplyReader(({ head, body }) => {
      const p = this.pending.get(head.id);
      this.pending.delete(head.id);
      p?.resolve({ head, body });
    });
    socket.on('data', (chunk: Buffer) => {
      try {
        replies.push(chunk);
      } catch (err) {
        // A reply that does not parse: nothing after it can be trusted.
        if (isRfError(err)) this.broken ??= err;
        fail(err instanceof Error ? err : new Error(String(err)));
        socket.destroy();
      }
    });
    const fail = (err?: Error) => {
      this.broken ??= new RfError(
        'RF_DAEMON',
        `the rf daemon closed the control connection${err ? `: ${err.message}` : ''}`,
        {
          hint: 'check that `rf listen` is still running on this store',
        },
      );
      for (const p of this.pending.values()) p.reject(this.broken);
      this.pending.clear();
    };
    socket.on('error', fail);
    socket.on('close', () => fail());
  }

  /** Connects to the daemon's socket; resolves null when no daemon answers there. */
  static connect(dir: string, socketPath: string, timeoutMs = 2000): Promise<RemoteKv | null> {
    return new Promise((resolve) => {
      const socket = net.connect(socketPath);
      const timer = setTimeout(() => {
        socket.destroy();
        resolve(null);
      }, timeoutMs);
      socket.once('error', () => {
        clearTimeout(timer);
        resolve(null);
      });
      socket.once('connect', () => {
        clearTimeout(timer);
        resolve(new RemoteKv(dir, socket));
      });
    });
  }

  private request(body: RequestBody): Promise<Received> {
    if (this.broken) return Promise.reject(this.broken);
    const id = this.nextId++;
    return new Promise<Received>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.socket.write(`${JSON.stringify({ ...body, id })}\n`);
    }).then((reply) => {
      const r = reply.head;
      if ('error' in r)
        throw new RfError('RF_DAEMON', `the rf daemon could not answer: ${r.error.message}`, {
          details: { code: r.error.code },
        });
      return reply;
    });
  }

  async get(key: string): Promise<Buffer | undefined> {
    const { head, body } = await this.request({ op: 'get', key });
    if ('found' in head) return head.found ? body : undefined;
    throw malformed('a get answered without a value', { key });
  }

  async *entries(range: KvRange): AsyncIterable<[string, Buffer]> {
    let remaining =
      range.limit !== undefined && range.limit >= 0 ? range.limit : Number.POSITIVE_INFINITY;
    const ask = (page: KvRange, left: number) =>
      this.request({
        op: 'entries',
        range: { ...page, limit: Number.isFinite(left) ? left : -1 },
      });
    let next: Promise<Received> | null = ask(range, remaining);
    while (next !== null) {
      const page = entriesOf(await next);
      next = null;
      const last = page.entries[page.entries.length - 1];
      const left = remaining - page.entries.length;
      // Ask for the next page before handing this one out: the daemon reads it meanwhile.
      if (page.more && last !== undefined && left > 0) {
        next = ask(after(range, last[0]), left);
        // Marked handled: a consumer that stops early never awaits it, and its failure then
        // must not become an unhandled rejection.
        next.catch(() => undefined);
      }
      for (const entry of page.entries) yield entry;
      remaining = left;
    }
  }

  /** Has the daemon rebuild (or remove) these segments' key indexes: see store/reindex.ts. */
  async reindex(
    source: string,
    segments: readonly SegmentRef[],
  ): Promise<{ written: number; removed: number }> {
    const total = { written: 0, removed: 0 };
    for (let i = 0; i < segments.length; i += REINDEX_MAX) {
      const { head } = await this.request({
        op: 'reindex',
        source,
        segments: segments.slice(i, i + REINDEX_MAX),
      });
      if (!('reindexed' in head)) throw malformed('a reindex answered without a count');
      total.written += head.reindexed.written;
      total.removed += head.reindexed.removed;
    }
    return total;
  }

  async status(): Promise<unknown> {
    const { head } = await this.request({ op: 'status' });
    return 'status' in head ? head.status : undefined;
  }

  async close(): Promise<void> {
    this.socket.end();
  }
}

/** The entries of a page. */
function entriesOf({ head, body }: Received): { entries: [string, Buffer][]; more: boolean } {
  if (!('count' in head)) throw malformed('an entries request answered without entries');
  const short = () =>
    malformed(`an entries page of ${body.length} bytes does not hold its ${head.count} entries`);
  const entries: [string, Buffer][] = new Array(head.count);
  let at = 0;
  // Each length is checked against the page before it is read or used.
  const length = () => {
    if (at + 4 > body.length) throw short();
    const n = body.readUInt32LE(at);
    at += 4;
    if (at + n > body.length) throw short();
    return n;
  };
  for (let i = 0; i < head.count; i++) {
    const keyLength = length();
    const key = body.toString('utf8', at, at + keyLength);
    at += keyLength;
    const valueLength = length();
    entries[i] = [key, body.subarray(at, at + valueLength)];
    at += valueLength;
  }
  if (at !== body.length) throw short();
  return { entries, more: head.more };
}

/** The rest of `range` past `key`, in its direction of travel. */
function after(range: KvRange, key: string): KvRange {
  const { gt: _gt, gte: _gte, lt: _lt, lte: _lte, ...rest } = range;
  return range.reverse
    ? {
        ...rest,
        ...(range.gt !== undefined ? { gt: range.gt } : {}),
        ...(range.gte !== undefined ? { gte: range.gte } : {}),
        lt: key,
      }
    : {
        ...rest,
        ...(range.lt !== undefined ? { lt: range.lt } : {}),
        ...(range.lte !== undefined ? { lte: range.lte } : {}),
        gt: key,
      };
}
