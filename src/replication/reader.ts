import type { Socket } from 'node:net';
import { RfError } from '../errors.js';

/**
 * Pull-based reading from a socket: every read names what it waits for and has a timeout; a
 * timeout destroys the socket. Chunks queue up to a high-water mark, then the socket pauses,
 * so a slow store slows the master's sending instead of growing memory.
 */
export class SocketReader {
  private readonly queue: Buffer[] = [];
  private queued = 0;
  private ended: Error | null = null;
  private waiter: (() => void) | null = null;
  private aborted: Error | null = null;

  constructor(
    private readonly socket: Socket,
    private readonly peer: string,
    private readonly highWater = 8 * 1024 * 1024,
  ) {
    socket.on('data', (chunk: Buffer) => {
      this.queue.push(chunk);
      this.queued += chunk.length;
      if (this.queued >= this.highWater) socket.pause();
      this.wake();
    });
    const end = (err?: Error) => {
      this.ended ??= new RfError(
        'RF_CONNECT',
        `connection to ${peer} closed${err ? `: ${err.message}` : ''}`,
        {
          details: { peer },
          cause: err,
        },
      );
      this.wake();
    };
    socket.on('end', () => end());
    socket.on('close', () => end());
    socket.on('error', (err) => end(err));
  }

  /** Makes the pending read and every later one throw `err`, without touching the socket. */
  abort(err: Error): void {
    this.aborted ??= err;
    this.wake();
  }

  /** Puts bytes back in front, for the part of a chunk that belongs to the next reader. */
  unshift(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.queue.unshift(chunk);
    this.queued += chunk.length;
  }

  /** The next chunk, whatever its size. */
  async read(timeoutMs: number, waitingFor: string): Promise<Buffer> {
    for (;;) {
      if (this.aborted) throw this.aborted;
      const chunk = this.queue.shift();
      if (chunk !== undefined) {
        this.queued -= chunk.length;
        if (this.queued < this.highWater / 2 && this.socket.isPaused()) this.socket.resume();
        return chunk;
      }
      if (this.ended) throw this.ended;
      await this.wait(timeoutMs, waitingFor);
    }
  }

  /**
   * One line without its CRLF. A bare `\n` is the keep-alive a master sends while it prepares a
   * snapshot (src/replication.c, replicationCron): it is skipped and restarts the timeout.
   */
  async readLine(timeoutMs: number, waitingFor: string): Promise<string> {
    let parts: Buffer[] = [];
    for (;;) {
      const chunk = await this.read(timeoutMs, waitingFor);
      const nl = chunk.indexOf(10);
      if (nl === -1) {
        parts.push(chunk);
        continue;
      }
      this.unshift(chunk.subarray(nl + 1));
      parts.push(chunk.subarray(0, nl));
      const line = Buffer.concat(parts).toString('latin1');
      parts = [];
      const text = line.endsWith('\r') ? line.slice(0, -1) : line;
      if (text.length > 0) return text;
    }
  }

  private wait(timeoutMs: number, waitingFor: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = null;
        const err = new RfError(
          'RF_TIMEOUT',
          `no answer from ${this.peer} in ${timeoutMs} ms while waiting for ${waitingFor}`,
          {
            details: { peer: this.peer, timeoutMs, waitingFor },
            hint: 'check that the master is up and reachable; rf reconnects by itself',
          },
        );
        this.ended ??= err;
        this.socket.destroy();
        reject(err);
      }, timeoutMs);
      this.waiter = () => {
        clearTimeout(timer);
        this.waiter = null;
        resolve();
      };
    });
  }

  private wake(): void {
    this.waiter?.();
  }
}
