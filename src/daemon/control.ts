import { promises as fs } from 'node:fs';
import net from 'node:net';
import { createInterface } from 'node:readline';
import { RfError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { KvRange, KvReader } from '../store/store.js';

/**
 * The daemon's local control socket. LevelDB admits one process, so while `rf listen` owns a
 * store the read-only commands (info, verify, log, restore) read it through here. Requests are
 * JSON lines. A reply is a JSON line too; one that carries data says how many raw bytes follow
 * it (`body`), so values cross the socket as they lie in the store, neither base64 nor JSON.
 * `entries` answers one page at a time, so the reader pulls and the daemon never buffers more
 * than a page per client.
 *
 * An `entries` body is, per entry: u32le key length, key (UTF-8), u32le value length, value.
 * A request without `binary` (an older reader) gets the values in the JSON line as base64.
 */
export type ControlRequest =
  | { id: number; op: 'get'; key: string; binary?: boolean }
  | { id: number; op: 'entries'; range: KvRange; maxBytes?: number; binary?: boolean }
  | { id: number; op: 'status' };

export type ControlReply =
  | { id: number; found: boolean; body?: number }
  | { id: number; count: number; more: boolean; body: number }
  | { id: number; value: string | null }
  | { id: number; entries: [string, string][]; more: boolean }
  | { id: number; status: unknown }
  | { id: number; error: { code: string; message: string } };

/** A reply line and the raw bytes that follow it. */
interface Answer {
  head: ControlReply;
  body?: Buffer[];
}

/** sizeof(sockaddr_un.sun_path) less its NUL: libuv cuts a longer path short without a word. */
const SOCKET_PATH_MAX = 107;

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

export async function startControlServer(
  socketPath: string,
  kv: KvReader,
  status: () => unknown,
  log: Logger,
): Promise<{ close(): Promise<void> }> {
  // A socket file left by a killed daemon: nothing answers on it (we hold the store lock).
  await fs.rm(socketPath, { force: true });
  const clients = new Set<net.Socket>();
  const server = net.createServer((conn) => {
    clients.add(conn);
    conn.on('close', () => clients.delete(conn));
    conn.on('error', () => conn.destroy());
    const lines = createInterface({ input: conn, crlfDelay: Number.POSITIVE_INFINITY });
    // Requests are answered one at a time per connection, in order: a client may send the next
    // before the answer to the last (a reader fetching its next page ahead), and it waits here.
    // (Pausing the line reader would not do: lines already read are still emitted.)
    let queue = Promise.resolve();
    lines.on('line', (line) => {
      queue = queue
        .then(async () => {
          const { head, body } = await answer(line);
          if (conn.destroyed) return;
          conn.cork();
          conn.write(`${JSON.stringify(head)}\n`);
          for (const part of body ?? []) conn.write(part);
          conn.uncork();
        })
        .catch((err: unknown) => {
          // A reply that could not be sent leaves the client waiting for it: drop the connection.
          log.warn({ err }, 'control reply failed');
          conn.destroy();
        });
    });
  });

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
      const req = JSON.parse(line) as ControlRequest;
      id = req.id;
      switch (req.op) {
        case 'get': {
          const v = await kv.get(req.key);
          if (!req.binary)
            return { head: { id, value: v === undefined ? null : v.toString('base64') } };
          if (v === undefined) return { head: { id, found: false } };
          return { head: { id, found: true, body: v.length }, body: [v] };
        }
        case 'entries': {
          const { out, more } = await page(req);
          if (!req.binary) {
            const entries = out.map(([k, v]): [string, string] => [k, v.toString('base64')]);
            return { head: { id, entries, more } };
          }
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
      }
      throw new TypeError(`unknown control request ${JSON.stringify(line.slice(0, 80))}`);
    } catch (err) {
      log.warn({ err }, 'control request failed');
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
      for (const c of clients) c.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await fs.rm(socketPath, { force: true });
    },
  };
}
