import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { FrameScanner } from '../../src/resp/frames.js';

/** One connection to the fake master, as its script sees it. */
export interface FakeConn {
  /**
   * The next command the client sent, as strings (name first). Rejects after `timeoutMs` (5 s
   * unless given) or when the connection closes first.
   */
  readCommand(timeoutMs?: number): Promise<string[]>;
  /**
   * Reads commands until one named `name` (case-insensitive) and returns its arguments after the
   * name. Commands before it are skipped, because a replica's `REPLCONF ACK`s arrive every second
   * at no fixed point; `received` keeps them all for tests that check the exact order.
   */
  expect(name: string, timeoutMs?: number): Promise<string[]>;
  /** Every command received on this connection so far, in order. */
  readonly received: ReadonlyArray<string[]>;
  /** Resolves once the data is handed to the kernel. */
  write(data: string | Buffer): Promise<void>;
  /** One byte per write, `delayMs` apart (1 ms unless given), to split frames everywhere. */
  writeBytewise(data: string | Buffer, delayMs?: number): Promise<void>;
  /** Half-closes (FIN) after the pending writes. */
  end(): void;
  /** Drops the connection at once. */
  destroy(): void;
  /** Resolves when the socket has closed, whoever closed it. */
  readonly closed: Promise<void>;
}

export interface FakeMaster {
  readonly port: number;
  /** Connections accepted so far. */
  readonly connections: number;
  /** What the scripts threw, one entry per failed connection; a test asserts it is empty. */
  readonly errors: unknown[];
  close(): Promise<void>;
}

/**
 * A scripted server for what a real master cannot be made to do on demand: frames split at
 * every byte, keep-alive newlines, hangs, disconnects at chosen points. The script runs once per
 * accepted connection; when it returns, the connection is ended.
 */
export async function startFakeMaster(
  script: (conn: FakeConn) => Promise<void>,
): Promise<FakeMaster> {
  const errors: unknown[] = [];
  const sockets = new Set<net.Socket>();
  const scripts = new Set<Promise<void>>();
  let accepted = 0;

  const server = net.createServer((socket) => {
    accepted++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    const conn = new Conn(socket);
    const run = script(conn)
      .catch((err: unknown) => {
        errors.push(err);
      })
      .finally(() => {
        conn.end();
        scripts.delete(run);
      });
    scripts.add(run);
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as net.AddressInfo;

  return {
    port,
    get connections() {
      return accepted;
    },
    errors,
    close: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      await Promise.all([closed, ...scripts]);
    },
  };
}

interface Waiter {
  resolve: (command: string[]) => void;
  reject: (err: Error) => void;
}

class Conn implements FakeConn {
  readonly received: string[][] = [];
  readonly closed: Promise<void>;
  private readonly scanner = new FrameScanner();
  private readonly queue: string[][] = [];
  private readonly waiters: Waiter[] = [];
  private failure: Error | null = null;

  constructor(private readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      try {
        for (const frame of this.scanner.push(chunk)) {
          if (frame.kind !== 'command') continue;
          const command = frame.args.map((arg) => arg.toString('utf8'));
          this.received.push(command);
          const waiter = this.waiters.shift();
          if (waiter === undefined) this.queue.push(command);
          else waiter.resolve(command);
        }
      } catch (err) {
        this.stop(err instanceof Error ? err : new Error(String(err)));
        socket.destroy();
      }
    });
    // The client going away is an outcome the script observes through `closed`, not a crash.
    socket.on('error', () => undefined);
    this.closed = new Promise((resolve) => {
      socket.once('close', () => {
        this.stop(new Error('fake master: the client closed the connection'));
        resolve();
      });
    });
  }

  readCommand(timeoutMs = 5_000): Promise<string[]> {
    const queued = this.queue.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    if (this.failure !== null) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        resolve: (command) => {
          clearTimeout(timer);
          resolve(command);
        },
        reject: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      };
      const timer = setTimeout(() => {
        const at = this.waiters.indexOf(waiter);
        if (at !== -1) this.waiters.splice(at, 1);
        reject(new Error(`fake master: no command from the client within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  async expect(name: string, timeoutMs = 5_000): Promise<string[]> {
    const wanted = name.toLowerCase();
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        throw new Error(`fake master: no ${name} from the client within ${timeoutMs} ms`);
      }
      const command = await this.readCommand(remaining).catch((err: Error) => {
        throw new Error(`fake master: waiting for ${name}: ${err.message}`, { cause: err });
      });
      if (command[0]?.toLowerCase() === wanted) {
        return command.slice(1);
      }
    }
  }

  write(data: string | Buffer): Promise<void> {
    return new Promise((resolve, reject) => {
      this.socket.write(data, (err) => (err ? reject(err) : resolve()));
    });
  }

  async writeBytewise(data: string | Buffer, delayMs = 1): Promise<void> {
    const bytes = typeof data === 'string' ? Buffer.from(data) : data;
    for (let i = 0; i < bytes.length; i++) {
      await this.write(bytes.subarray(i, i + 1));
      await sleep(delayMs);
    }
  }

  end(): void {
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }

  private stop(err: Error): void {
    this.failure ??= err;
    for (const waiter of this.waiters.splice(0)) waiter.reject(this.failure);
  }
}
