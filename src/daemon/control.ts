import { promises as fs } from 'node:fs';
import net from 'node:net';
import { createInterface } from 'node:readline';
import { RfError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { KvRange, KvReader } from '../store/store.js';

/**
 * The daemon's local control socket. LevelDB admits one process, so while `rf listen` owns a
 * store the read-only commands (info, verify, log, restore) read it through here. Requests and
 * replies are JSON lines; `entries` answers one page at a time, so the reader pulls and the
 * daemon never buffers more than a page per client.
 */
export type ControlRequest =
  | { id: number; op: 'get'; key: string }
  | { id: number; op: 'entries'; range: KvRange; maxBytes?: number }
  | { id: number; op: 'status' };

export type ControlReply =
  | { id: number; value: string | null }
  | { id: number; entries: [string, string][]; more: boolean }
  | { id: number; status: unknown }
  | { id: number; error: { code: string; message: string } };

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
    // One request at a time per connection, in order: the client waits for each reply.
    lines.on('line', (line) => {
      lines.pause();
      void answer(line).then((reply) => {
        if (!conn.destroyed) conn.write(`${JSON.stringify(reply)}\n`);
        lines.resume();
      });
    });
  });

  const answer = async (line: string): Promise<ControlReply> => {
    let id = -1;
    try {
      const req = JSON.parse(line) as ControlRequest;
      id = req.id;
      switch (req.op) {
        case 'get': {
          const v = await kv.get(req.key);
          return { id, value: v === undefined ? null : v.toString('base64') };
        }
        case 'entries': {
          const out: [string, string][] = [];
          let bytes = 0;
          const maxBytes = Math.min(req.maxBytes ?? PAGE_BYTES, PAGE_BYTES);
          const limit =
            req.range.limit !== undefined && req.range.limit >= 0
              ? req.range.limit
              : Number.POSITIVE_INFINITY;
          let more = false;
          for await (const [k, v] of kv.entries({ ...req.range, limit: -1 })) {
            if (
              out.length >= Math.min(limit, PAGE_ENTRIES) ||
              (bytes >= maxBytes && out.length > 0)
            ) {
              more = out.length < limit;
              break;
            }
            out.push([k, v.toString('base64')]);
            bytes += v.length + k.length;
          }
          return { id, entries: out, more };
        }
        case 'status':
          return { id, status: status() };
      }
      throw new TypeError(`unknown control request ${JSON.stringify(line.slice(0, 80))}`);
    } catch (err) {
      log.warn({ err }, 'control request failed');
      const code = (err as { code?: string }).code ?? 'RF_DAEMON';
      return { id, error: { code, message: (err as Error).message } };
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
