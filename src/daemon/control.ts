import { promises as fs } from 'node:fs';
import net from 'node:net';
import { RfError } from '../errors.js';
import type { Logger } from '../logger.js';
import { reindexSegments, type SegmentRef } from '../store/reindex.js';
import { type KvRange, type KvReader, type Store, storePaths } from '../store/store.js';
import {
  CONTROL_LIMITS,
  type ControlLimits,
  idOf,
  parseRequest,
  RequestLines,
} from './control-request.js';

/**
 * The daemon's local control socket. LevelDB admits one process, so while `rf listen` owns a
 * store the read-only commands (info, verify, log, restore) read it through here. Requests are
 * JSON lines. A reply is a JSON line too; one that carries data says how many raw bytes follow
 * it (`body`), so values cross the socket as they lie in the store, neither base64 nor JSON.
 * `entries` answers one page at a time, so the reader pulls and the daemon never buffers more
 * than a page per client.
 *
 * An `entries` body is, per entry: u32le key length, key (UTF-8), u32le value length, value.
 *
 * The daemon holds the archive and the capture: nothing a client sends (garbage, a line with no
 * end, a request left half sent, a reader that never reads, a crowd) may cost it more than a
 * dropped connection. See control-request.ts for the bounds.
 */
export type ControlRequest =
  | { id: number; op: 'get'; key: string }
  | { id: number; op: 'entries'; range: KvRange; maxBytes?: number }
  | { id: number; op: 'status' }
  /** `rf verify` asks the owner to rebuild (or remove) these segments' key indexes. */
  | { id: number; op: 'reindex'; source: string; segments: SegmentRef[] };

export type ControlReply =
  | { id: number; found: boolean; body?: number }
  | { id: number; count: number; more: boolean; body: number }
  | { id: number; status: unknown }
  | { id: number; reindexed: { written: number; removed: number } }
  | { id: number; error: { code: string; message: string } };

/** A reply line and the raw bytes that follow it. */
interface Answer {
  head: ControlReply;
  body?: Buffer[];
}

/** sizeof(sockaddr_un.sun_path) less its NUL: libuv cuts a longer path short without a word. */
const SOCKET_PATH_MAX = 107;

/**
 * The control socket of the daemon that owns the store in `dir`: readers go through it while
 * it holds LevelDB's lock, and `rf log` may ask it to index segments.
 */
export function serveOwnedStore(
  dir: string,
  store: Store,
  status: () => unknown,
  log: Logger,
): Promise<{ close(): Promise<void> }> {
  return startControlServer(
    storePaths(dir).socket,
    store,
    status,
    log,
    undefined,
    (source, segments) => reindexSegments(store, source, segments),
  );
}

/**
 * Refuses a control socket path that a Unix socket cannot hold, before the daemon creates
 * anything: bound, it would be cut short and land beside the store, out of the readers' reach.
 */
export function checkControlSocketPath(store: string, socketPath: string): void {
  const bytes = Buffer.byteLength(socketPath);
  if (bytes <= SOCKET_PATH_MAX) return;
  throw new RfError(
    'RF_USAGE',
    `the store path is too long for rf listen's control socket: ${socketPath} is ${bytes} bytes, a Unix socket path holds at most ${SOCKET_PATH_MAX}`,
    {
      details: { store, socket: socketPath, bytes, limit: SOCKET_PATH_MAX },
      hint: `readers reach a running rf listen through <store>/rf.sock: use a --store path of at most ${SOCKET_PATH_MAX - (bytes - Buffer.byteLength(store))} bytes, for instance a symlink to this directory`,
    },
  );
}

const PAGE_ENTRIES = 4096;
const PAGE_BYTES = 4 * 1024 * 1024;

export type Reindex = (
  source: string,
  segments: readonly SegmentRef[],
) => Promise<{ written: number; removed: number }>;

export async function startControlServer(
  socketPath: string,
  kv: KvReader,
  status: () => unknown,
  log: Logger,
  limits: ControlLimits = CONTROL_LIMITS,
  reindex?: Reindex,
): Promise<{ close(): Promise<void> }> {
  // A socket file left by a killed daemon: nothing answers on it (we hold the store lock).
  await fs.rm(socketPath, { force: true });
  /** Each connection and whether it is idle: no request of its being answered or queued. */
  const clients = new Map<net.Socket, () => boolean>();
  const server = net.createServer((conn) => {
    // Past the cap, the oldest idle connection makes room: one that holds a slot and asks
    // nothing (or only half of something) must not keep a reader out. With none idle, the
    // newcomer is turned away and the readers being served go on.
    if (clients.size >= limits.connections) {
      const idle = [...clients].find(([, isIdle]) => isIdle())?.[0];
      log.warn(
        { connections: clients.size, evicted: idle !== undefined },
        'control connections at their cap',
      );
      if (idle === undefined) {
        conn.destroy();
        return;
      }
      idle.destroy();
      clients.delete(idle);
    }
    clients.set(conn, serveConnection(conn));
    conn.on('close', () => clients.delete(conn));
  });

  const serveConnection = (conn: net.Socket): (() => boolean) => {
    conn.on('error', () => conn.destroy());
    const reader = new RequestLines(limits.requestBytes);
    const queue: string[] = [];
    let busy = false;
    let partialTimer: NodeJS.Timeout | null = null;
    const drop = (why: string) => {
      log.warn({ why }, 'control connection dropped');
      conn.destroy();
    };
    conn.on('close', () => {
      if (partialTimer !== null) clearTimeout(partialTimer);
      queue.length = 0;
    });
    conn.on('data', (chunk: Buffer) => {
      const lines = reader.push(chunk);
      if (lines === null) return drop(`a request longer than ${limits.requestBytes} bytes`);
      queue.push(...lines);
      if (partialTimer !== null) clearTimeout(partialTimer);
      partialTimer = reader.pending
        ? setTimeout(() => drop('a request left unfinished'), limits.partialRequestMs)
        : null;
      // Requests are answered one at a time, in order: a reader may send its next request
      // before the answer to the last (fetching its next page ahead). One that sends many and
      // reads nothing is no longer read, so it holds no more than its socket's buffers.
      if (queue.length >= limits.pipelined) conn.pause();
      void pump();
    });
    const pump = async () => {
      if (busy) return;
      busy = true;
      try {
        for (let line = queue.shift(); line !== undefined; line = queue.shift()) {
          if (queue.length < limits.pipelined) conn.resume();
          const { head, body } = await answer(line);
          if (conn.destroyed) return;
          conn.cork();
          let room = conn.write(`${JSON.stringify(head)}\n`);
          for (const part of body ?? []) room = conn.write(part);
          conn.uncork();
          // A reader that does not read holds one reply here, not every reply it asked for.
          if (!room) await drained(conn);
        }
      } catch (err) {
        // A reply that could not be sent leaves the client waiting for it: drop the connection.
        log.warn({ err }, 'control reply failed');
        conn.destroy();
      } finally {
        busy = false;
      }
    };
    return () => !busy && queue.length === 0;
  };

  const page = async (req: Extract<ControlRequest, { op: 'entries' }>) => {
    const out: [string, Buffer][] = [];
    let bytes = 0;
    const maxBytes = Math.min(req.maxBytes ?? PAGE_BYTES, PAGE_BYTES);
    const limit =
      req.range.limit !== undefined && req.range.limit >= 0
        ? req.range.limit
        : Number.POSITIVE_INFINITY;
    let more = false;
    for await (const [k, v] of kv.entries({ ...req.range, limit: -1 })) {
      if (out.length >= Math.min(limit, PAGE_ENTRIES) || (bytes >= maxBytes && out.length > 0)) {
        more = out.length < limit;
        break;
      }
      out.push([k, v]);
      bytes += v.length + k.length;
    }
    return { out, more };
  };

  const answer = async (line: string): Promise<Answer> => {
    let id = -1;
    try {
      const req = parseRequest(line);
      id = req.id;
      switch (req.op) {
        case 'get': {
          const v = await kv.get(req.key);
          if (v === undefined) return { head: { id, found: false } };
          return { head: { id, found: true, body: v.length }, body: [v] };
        }
        case 'entries': {
          const { out, more } = await page(req);
          const body: Buffer[] = [];
          let length = 0;
          for (const [k, v] of out) {
            const key = Buffer.from(k, 'utf8');
            const lens = Buffer.allocUnsafe(4);
            lens.writeUInt32LE(key.length, 0);
            const vlen = Buffer.allocUnsafe(4);
            vlen.writeUInt32LE(v.length, 0);
            body.push(lens, key, vlen, v);
            length += 8 + key.length + v.length;
          }
          return { head: { id, count: out.length, more, body: length }, body };
        }
        case 'status':
          return { head: { id, status: status() } };
        case 'reindex': {
          if (reindex === undefined)
            throw new TypeError('this daemon does not rebuild key indexes');
          return { head: { id, reindexed: await reindex(req.source, req.segments) } };
        }
      }
    } catch (err) {
      log.warn({ err }, 'control request failed');
      if (id === -1) id = idOf(line);
      const code = (err as { code?: string }).code ?? 'RF_DAEMON';
      return { head: { id, error: { code, message: (err as Error).message } } };
    }
  };

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => {
      server.off('error', reject);
      resolve();
    });
  });
  await fs.chmod(socketPath, 0o600);
  log.debug({ socket: socketPath }, 'control socket listening');
  return {
    close: async () => {
      for (const c of clients.keys()) c.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await fs.rm(socketPath, { force: true });
    },
  };
}

/** Resolves when the socket can take more, or is gone. */
function drained(conn: net.Socket): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      conn.off('drain', done);
      conn.off('close', done);
      resolve();
    };
    conn.on('drain', done);
    conn.on('close', done);
  });
}
