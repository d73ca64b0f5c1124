import net from 'node:net';
import { createInterface, type Interface } from 'node:readline';
import { RfError } from '../errors.js';
import type { KvRange, KvReader } from '../store/store.js';
import type { ControlReply, ControlRequest } from './control.js';

type Pending = { resolve: (r: ControlReply) => void; reject: (e: Error) => void };
type RequestBody = ControlRequest extends infer R
  ? R extends { id: number }
    ? Omit<R, 'id'>
    : never
  : never;

/** Reads a store through the `rf listen` that owns it. */
export class RemoteKv implements KvReader {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private broken: Error | null = null;

  private constructor(
    readonly dir: string,
    private readonly socket: net.Socket,
    lines: Interface,
  ) {
    lines.on('line', (line) => {
      const reply = JSON.parse(line) as ControlReply;
      const p = this.pending.get(reply.id);
      this.pending.delete(reply.id);
      p?.resolve(reply);
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
        resolve(
          new RemoteKv(
            dir,
            socket,
            createInterface({ input: socket, crlfDelay: Number.POSITIVE_INFINITY }),
          ),
        );
      });
    });
  }

  private request(body: RequestBody): Promise<ControlReply> {
    if (this.broken) return Promise.reject(this.broken);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.socket.write(`${JSON.stringify({ ...body, id })}\n`);
    }).then((reply) => {
      const r = reply as ControlReply;
      if ('error' in r)
        throw new RfError('RF_DAEMON', `the rf daemon could not answer: ${r.error.message}`, {
          details: { code: r.error.code },
        });
      return r;
    });
  }

  async get(key: string): Promise<Buffer | undefined> {
    const reply = await this.request({ op: 'get', key });
    if (!('value' in reply)) throw new TypeError('control: get answered without a value');
    return reply.value === null ? undefined : Buffer.from(reply.value, 'base64');
  }

  async *entries(range: KvRange): AsyncIterable<[string, Buffer]> {
    let remaining =
      range.limit !== undefined && range.limit >= 0 ? range.limit : Number.POSITIVE_INFINITY;
    let page: KvRange = { ...range };
    while (remaining > 0) {
      const reply = await this.request({
        op: 'entries',
        range: { ...page, limit: Number.isFinite(remaining) ? remaining : -1 },
      });
      if (!('entries' in reply)) throw new TypeError('control: entries answered without entries');
      for (const [k, v] of reply.entries) {
        yield [k, Buffer.from(v, 'base64')];
        remaining--;
      }
      const last = reply.entries[reply.entries.length - 1];
      if (!reply.more || last === undefined) return;
      // Continue past the last key seen, in the direction of travel.
      const { gt: _gt, gte: _gte, lt: _lt, lte: _lte, ...rest } = page;
      page = range.reverse
        ? {
            ...rest,
            ...(range.gt !== undefined ? { gt: range.gt } : {}),
            ...(range.gte !== undefined ? { gte: range.gte } : {}),
            lt: last[0],
          }
        : {
            ...rest,
            ...(range.lt !== undefined ? { lt: range.lt } : {}),
            ...(range.lte !== undefined ? { lte: range.lte } : {}),
            gt: last[0],
          };
    }
  }

  async status(): Promise<unknown> {
    const reply = await this.request({ op: 'status' });
    return 'status' in reply ? reply.status : undefined;
  }

  async close(): Promise<void> {
    this.socket.end();
  }
}
