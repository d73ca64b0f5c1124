// Over 400 lines: the one Redis client (connect, TLS, AUTH, pipelined replies, per-command
// timeouts, replica streams); its timers and pending replies share one socket's state.
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import tls from 'node:tls';
import RedisParser from 'redis-parser';
import { errnoCode, RfError } from '../errors.js';
import { describeEndpoint, type RedisEndpoint } from '../redis-url.js';
import { type Command, type CommandArg, encodeCommand, encodeCommands } from './encode.js';
import { ReplyGuard } from './reply-guard.js';

export interface SocketOptions {
  /** How long the TCP (and TLS) connection may take. */
  timeoutMs: number;
  /** Passed to `tls.connect` for rediss:// endpoints: ca, cert, key, rejectUnauthorized… */
  tlsOptions?: tls.ConnectionOptions;
}

export interface RedisClientOptions {
  /** Deadline for connecting and for each reply; 10 000 ms unless given. */
  timeoutMs?: number;
  /** Sent as CLIENT SETNAME, so the connection is recognisable in CLIENT LIST. */
  name?: string;
  /** Bulk and status replies as Buffers (binary-safe) instead of UTF-8 strings. */
  returnBuffers?: boolean;
  tlsOptions?: tls.ConnectionOptions;
}

export interface CommandOptions {
  /** Overrides the client's timeout for this reply, e.g. for a blocking command. */
  timeoutMs?: number;
}

/** An error reply from Redis (`-ERR …`, `-WRONGTYPE …`): the command ran and was refused. */
export class RedisReplyError extends Error {
  override readonly name = 'RedisReplyError';
  /** The reply's first word (ERR, WRONGTYPE, LOADING, NOPERM…), what Redis calls the error code. */
  readonly prefix: string;
  /** The command name the reply answers, when known; never its arguments, which may be secrets. */
  readonly command: string | undefined;

  constructor(reply: string, command?: string) {
    super(reply);
    this.prefix = reply.split(' ', 1)[0] ?? '';
    this.command = command;
  }
}

const DEFAULT_TIMEOUT_MS = 10_000;
/** setTimeout fires at once for anything larger. */
const MAX_TIMER_MS = 2 ** 31 - 1;

const unreachableHint = (where: string): string =>
  `check that redis-server runs at ${where} and that this host may reach it (firewall, bind, protected-mode)`;

/**
 * Opens a TCP connection, or TLS for a rediss:// endpoint, failing with RF_CONNECT or RF_TIMEOUT
 * naming the peer.
 */
export function openSocket(endpoint: RedisEndpoint, options: SocketOptions): Promise<net.Socket> {
  const where = describeEndpoint(endpoint);
  return new Promise((resolve, reject) => {
    const socket = endpoint.tls
      ? tls.connect({
          host: endpoint.host,
          port: endpoint.port,
          // SNI takes a host name only (RFC 6066 §3).
          ...(net.isIP(endpoint.host) === 0 ? { servername: endpoint.host } : {}),
          ...options.tlsOptions,
        })
      : net.connect({ host: endpoint.host, port: endpoint.port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(
        new RfError('RF_TIMEOUT', `could not connect to ${where} within ${options.timeoutMs} ms`, {
          details: { peer: where, timeoutMs: options.timeoutMs },
          hint: unreachableHint(where),
        }),
      );
    }, clampTimer(options.timeoutMs));
    const onError = (err: Error): void => {
      clearTimeout(timer);
      socket.destroy();
      const errno = errnoCode(err);
      const tlsProblem = endpoint.tls && errno !== 'ECONNREFUSED' && errno !== 'ENOTFOUND';
      reject(
        new RfError('RF_CONNECT', `cannot connect to ${where}: ${err.message}`, {
          details: { peer: where, errno, tls: endpoint.tls },
          hint: tlsProblem
            ? 'check the TLS options (CA, client certificate and key) and that the server speaks TLS on this port'
            : unreachableHint(where),
          cause: err,
        }),
      );
    };
    socket.once('error', onError);
    socket.once(endpoint.tls ? 'secureConnect' : 'connect', () => {
      clearTimeout(timer);
      socket.off('error', onError);
      socket.setNoDelay(true);
      socket.setKeepAlive(true, 10_000);
      resolve(socket);
    });
  });
}

interface Pending {
  resolve: (reply: unknown) => void;
  reject: (err: unknown) => void;
  command: string;
  sentAt: number;
  timeoutMs: number;
  /** A pipeline(): the replies so far, and how many it waits for. */
  batch?: unknown[];
  expect?: number;
}

/**
 * A small RESP2 command client: commands are pipelined and replies matched in order (Redis answers
 * a connection's commands in the order it received them). Used by rf for restore targets, doctor
 * and the AOF rewrite cycle, and by tests; the replication stream does not go through it.
 */
export class RedisClient {
  readonly endpoint: RedisEndpoint;
  private readonly socket: net.Socket;
  private readonly parser: RedisParser;
  private readonly guard = new ReplyGuard();
  private readonly timeoutMs: number;
  private readonly where: string;
  /** FIFO of calls awaiting a reply; `head` avoids Array#shift on long pipelines. */
  private queue: Array<Pending | undefined> = [];
  private head = 0;
  private state: 'open' | 'closing' | 'closed' = 'open';
  /** Why the connection ended, given to every call rejected because of it. */
  private failure: RfError | null = null;
  private timer: NodeJS.Timeout | null = null;
  private timerDue = 0;
  private lastReplyAt = 0;
  private corked = false;
  /** The reply `+OK` as the parser would give it; one value for all (see okReplies). */
  private readonly ok: Buffer | string;
  private readonly closedPromise: Promise<void>;

  private constructor(
    socket: net.Socket,
    endpoint: RedisEndpoint,
    timeoutMs: number,
    returnBuffers: boolean,
  ) {
    this.socket = socket;
    this.endpoint = endpoint;
    this.timeoutMs = timeoutMs;
    this.where = describeEndpoint(endpoint);
    this.parser = new RedisParser({
      returnBuffers,
      returnReply: (reply: unknown) => this.onReply(reply),
      returnError: (err: Error) => this.onErrorReply(err.message),
      returnFatalError: (err: Error) =>
        this.fail(
          new RfError(
            'RF_PROTOCOL',
            `${this.where} sent a reply that is not RESP: ${err.message}`,
            {
              details: { peer: this.where },
              cause: err,
            },
          ),
        ),
    });
    this.ok = returnBuffers ? Buffer.from('OK') : 'OK';
    socket.on('data', (chunk: Buffer) => {
      try {
        const taken = this.okReplies(chunk);
        if (taken === chunk.length) return;
        const rest = taken === 0 ? chunk : chunk.subarray(taken);
        this.guard.push(rest);
        this.parser.execute(rest);
      } catch (err) {
        // A reply that breaks the framing, or one redis-parser throws on: the peer is not
        // speaking RESP, and nothing after it can be matched to a command.
        this.fail(
          new RfError(
            'RF_PROTOCOL',
            `${this.where} sent a reply that is not RESP: ${(err as Error).message}`,
            { details: { peer: this.where }, cause: err },
          ),
        );
      }
    });
    socket.on('error', (err) => {
      this.failure ??= new RfError(
        'RF_CONNECT',
        `connection to ${this.where} failed: ${err.message}`,
        {
          details: { peer: this.where, errno: errnoCode(err) },
          hint: unreachableHint(this.where),
          cause: err,
        },
      );
    });
    this.closedPromise = new Promise((resolve) => {
      socket.once('close', () => {
        this.state = 'closed';
        this.clearTimer();
        this.rejectAll(
          this.failure ??
            (this.guard.inReply
              ? new RfError(
                  'RF_PROTOCOL',
                  `${this.where} closed the connection in the middle of a reply`,
                  { details: { peer: this.where } },
                )
              : new RfError('RF_CONNECT', `connection to ${this.where} closed`, {
                  details: { peer: this.where },
                  hint: unreachableHint(this.where),
                })),
        );
        resolve();
      });
    });
  }

  /**
   * Connects, then logs in (AUTH), selects the database and sets the client name, as the endpoint
   * and options ask. Fails with RF_CONNECT, RF_TIMEOUT or RF_AUTH; never echoes the password.
   */
  static async connect(
    endpoint: RedisEndpoint,
    options: RedisClientOptions = {},
  ): Promise<RedisClient> {
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const socket = await openSocket(endpoint, {
      timeoutMs,
      ...(options.tlsOptions === undefined ? {} : { tlsOptions: options.tlsOptions }),
    });
    const client = new RedisClient(socket, endpoint, timeoutMs, options.returnBuffers === true);
    // Pipelined; if AUTH fails the others fail too, and Promise.all reports AUTH's error first.
    const handshake: Array<Promise<unknown>> = [];
    if (endpoint.password !== undefined) {
      const auth =
        endpoint.username === undefined
          ? ['AUTH', endpoint.password]
          : ['AUTH', endpoint.username, endpoint.password];
      handshake.push(client.command(auth).catch((err) => Promise.reject(client.authError(err))));
    }
    if (endpoint.db !== 0) {
      handshake.push(
        client
          .command(['SELECT', endpoint.db])
          .catch((err) => Promise.reject(client.selectError(err))),
      );
    }
    if (options.name !== undefined)
      handshake.push(
        client
          .command(['CLIENT', 'SETNAME', options.name])
          .catch((err) => Promise.reject(client.setnameError(err))),
      );
    try {
      await Promise.all(handshake);
    } catch (err) {
      client.destroy();
      throw err;
    }
    return client;
  }

  /** The local address of the connection: where the server sees this client come from. */
  get localAddress(): string | undefined {
    return this.socket.localAddress;
  }

  /** True until the connection closes or close()/destroy() is called. */
  get connected(): boolean {
    return this.state === 'open';
  }

  /** Number of calls sent and not answered yet. */
  get pendingReplies(): number {
    return this.queue.length - this.head;
  }

  /** Sends a command and resolves with its reply; Redis error replies reject with RedisReplyError. */
  call(...args: CommandArg[]): Promise<unknown> {
    return this.command(args);
  }

  command(args: ReadonlyArray<CommandArg>, options: CommandOptions = {}): Promise<unknown> {
    const name = args[0] === undefined ? '' : String(args[0]).toUpperCase();
    if (this.state !== 'open') {
      return Promise.reject(
        new RfError(
          'RF_CONNECT',
          `cannot send ${name}: the connection to ${this.where} is closed`,
          {
            details: { peer: this.where, command: name },
            ...(this.failure === null ? {} : { cause: this.failure }),
          },
        ),
      );
    }
    const payload = encodeCommand(args);
    return new Promise((resolve, reject) => {
      this.queue.push({
        resolve,
        reject,
        command: name,
        sentAt: performance.now(),
        timeoutMs: options.timeoutMs ?? this.timeoutMs,
      });
      // Calls made in the same tick leave in one write.
      if (!this.corked) {
        this.corked = true;
        this.socket.cork();
        process.nextTick(() => {
          this.corked = false;
          this.socket.uncork();
        });
      }
      this.socket.write(payload);
      this.armTimer();
    });
  }

  /**
   * Sends many commands in one write and resolves with every reply in order, error replies as
   * RedisReplyError values rather than rejections: one promise for a whole pipeline, for callers
   * that send thousands of commands (a promise and a queue entry each cost more than the reply).
   */
  pipeline(commands: ReadonlyArray<Command>): Promise<unknown[]> {
    if (commands.length === 0) return Promise.resolve([]);
    if (this.state !== 'open') {
      const first = commands[0]!;
      return this.command(Buffer.isBuffer(first) ? ['a pipeline'] : first).then(() => []);
    }
    return this.pipelineEncoded(encodeCommands(commands), commands.length);
  }

  /** pipeline() of `count` commands already encoded back to back in `payload`. */
  pipelineEncoded(payload: Buffer, count: number): Promise<unknown[]> {
    if (count === 0) return Promise.resolve([]);
    if (this.state !== 'open') return this.command(['a pipeline']).then(() => []);
    return new Promise((resolve, reject) => {
      this.queue.push({
        resolve: resolve as (reply: unknown) => void,
        reject,
        command: `a pipeline of ${count} commands`,
        sentAt: performance.now(),
        timeoutMs: this.timeoutMs,
        batch: [],
        expect: count,
      });
      this.socket.write(payload);
      this.armTimer();
    });
  }

  /** Resolves once the socket's write buffer has drained, for callers pipelining large batches. */
  waitForDrain(): Promise<void> {
    if (!this.socket.writableNeedDrain || this.state === 'closed') return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        this.socket.off('drain', done);
        this.socket.off('close', done);
        resolve();
      };
      this.socket.once('drain', done);
      this.socket.once('close', done);
    });
  }

  /** INFO [section] as key → value; section headers and blank lines are dropped. */
  async info(section?: string): Promise<Record<string, string>> {
    const reply = await this.command(section === undefined ? ['INFO'] : ['INFO', section]);
    return parseInfo(Buffer.isBuffer(reply) ? reply.toString('utf8') : String(reply));
  }

  /** Waits for the replies in flight, sends QUIT and closes the connection. */
  async close(): Promise<void> {
    if (this.state === 'open') {
      const quit = this.command(['QUIT'], { timeoutMs: Math.min(this.timeoutMs, 2_000) });
      this.state = 'closing';
      // Whatever QUIT answers, the connection is going away; its failure is not the caller's.
      await quit.catch(() => undefined);
      this.socket.end();
      const timer = setTimeout(() => this.socket.destroy(), 2_000);
      await this.closedPromise;
      clearTimeout(timer);
    } else {
      await this.closedPromise;
    }
  }

  /** Closes at once; calls in flight reject with RF_CONNECT. */
  destroy(): void {
    if (this.state === 'closed') return;
    this.failure ??= new RfError('RF_CONNECT', `connection to ${this.where} was closed by rf`, {
      details: { peer: this.where },
    });
    this.state = 'closing';
    this.socket.destroy();
  }

  /**
   * The `+OK` replies at the start of a chunk that answer pipeline() calls, taken without the
   * guard and the parser: a pipeline of RESTOREs is answered a million times `+OK`, and each
   * reply through them costs a string, a Buffer and a regular expression. Only between replies
   * (the guard holds no part of one, so neither does the parser) and only for a pipeline, whose
   * replies are handed over in one array. Returns how many bytes were taken.
   */
  private okReplies(chunk: Buffer): number {
    if (this.guard.inReply) return 0;
    let at = 0;
    for (;;) {
      const head = this.queue[this.head];
      const batch = head?.batch;
      if (head === undefined || batch === undefined || head.expect === undefined) break;
      const start = at;
      while (
        batch.length < head.expect &&
        at + 5 <= chunk.length &&
        chunk[at] === 43 && // +
        chunk[at + 1] === 79 && // O
        chunk[at + 2] === 75 && // K
        chunk[at + 3] === 13 &&
        chunk[at + 4] === 10
      ) {
        batch.push(this.ok);
        at += 5;
      }
      if (batch.length < head.expect) {
        if (at > start) this.lastReplyAt = performance.now();
        break;
      }
      this.take();
      head.resolve(batch);
    }
    if (at > 0) this.armTimer();
    return at;
  }

  /** A reply to a pipeline() in progress: kept until the last one comes. */
  private batchReply(reply: unknown): boolean {
    const head = this.queue[this.head];
    if (head?.batch === undefined) return false;
    head.batch.push(reply);
    if (head.batch.length === head.expect) {
      this.take();
      head.resolve(head.batch);
    } else {
      this.lastReplyAt = performance.now();
    }
    this.armTimer();
    return true;
  }

  private onReply(reply: unknown): void {
    if (this.batchReply(Array.isArray(reply) ? wrapNestedErrors(reply) : reply)) return;
    const pending = this.take();
    if (pending === undefined) {
      this.fail(
        new RfError('RF_PROTOCOL', `${this.where} sent a reply nobody asked for`, {
          details: { peer: this.where },
        }),
      );
      return;
    }
    this.armTimer();
    pending.resolve(Array.isArray(reply) ? wrapNestedErrors(reply) : reply);
  }

  private onErrorReply(text: string): void {
    if (this.batchReply(new RedisReplyError(text))) return;
    const pending = this.take();
    if (pending === undefined) {
      this.fail(
        new RfError('RF_PROTOCOL', `${this.where} sent an error nobody asked for: ${text}`, {
          details: { peer: this.where },
        }),
      );
      return;
    }
    this.armTimer();
    const reply = new RedisReplyError(text, pending.command);
    if (reply.prefix === 'NOAUTH') {
      pending.reject(
        new RfError(
          'RF_AUTH',
          `${this.where} requires a password (${pending.command} got NOAUTH)`,
          {
            details: { peer: this.where, command: pending.command },
            hint: 'give the password in the URL (redis://:password@host:port) or in RF_PASSWORD',
            cause: reply,
          },
        ),
      );
      return;
    }
    pending.reject(reply);
  }

  private take(): Pending | undefined {
    const pending = this.queue[this.head];
    if (pending === undefined) return undefined;
    this.queue[this.head++] = undefined;
    if (this.head === this.queue.length) {
      this.queue = [];
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    this.lastReplyAt = performance.now();
    return pending;
  }

  /**
   * One timer for the oldest call only. Its deadline runs from when it was sent or from the last
   * reply, whichever is later: a long pipeline that keeps being answered is alive, even if its
   * tail waits longer than the timeout behind the head.
   */
  private armTimer(): void {
    const pending = this.queue[this.head];
    if (pending === undefined) return;
    const due = Math.max(pending.sentAt, this.lastReplyAt) + pending.timeoutMs;
    // An armed timer that fires early finds a later deadline and re-arms; one that would fire late
    // (the new head has a shorter timeout) is replaced.
    if (this.timer !== null) {
      if (this.timerDue <= due) return;
      clearTimeout(this.timer);
    }
    this.timerDue = due;
    this.timer = setTimeout(() => this.onTimer(), clampTimer(due - performance.now()));
  }

  private onTimer(): void {
    this.timer = null;
    const pending = this.queue[this.head];
    if (pending === undefined) return;
    const due = Math.max(pending.sentAt, this.lastReplyAt) + pending.timeoutMs;
    if (performance.now() + 1 < due) {
      this.armTimer();
      return;
    }
    const timeout = new RfError(
      'RF_TIMEOUT',
      `${this.where} did not answer ${pending.command} within ${pending.timeoutMs} ms`,
      {
        details: { peer: this.where, command: pending.command, timeoutMs: pending.timeoutMs },
        hint: `check that ${this.where} is not blocked (a long command, a slow disk, a paused process); raise the timeout if the command is expected to take longer`,
      },
    );
    this.take();
    pending.reject(timeout);
    // A late reply would be matched to the wrong call: the connection cannot be used any more.
    this.fail(
      new RfError(
        'RF_CONNECT',
        `connection to ${this.where} dropped after ${pending.command} timed out`,
        {
          details: { peer: this.where },
          cause: timeout,
        },
      ),
    );
  }

  private fail(err: RfError): void {
    this.failure ??= err;
    this.state = 'closing';
    this.socket.destroy();
  }

  private rejectAll(err: RfError): void {
    for (let pending = this.take(); pending !== undefined; pending = this.take()) {
      pending.reject(err);
    }
  }

  private clearTimer(): void {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
  }

  private authError(err: unknown): unknown {
    if (!(err instanceof RedisReplyError)) return err;
    const user = this.endpoint.username ?? 'default';
    // Redis 6+ answers WRONGPASS; before ACLs it was "ERR invalid password". The no-password case
    // is "ERR AUTH <password> called without any password configured" (acl.c), with that literal.
    const noPasswordSet = err.message.includes('without any password configured');
    return new RfError(
      'RF_AUTH',
      `authentication to ${this.where} as user ${JSON.stringify(user)} failed: ${err.message}`,
      {
        details: { peer: this.where, user },
        hint: noPasswordSet
          ? 'the server has no password set: remove it from the URL and RF_PASSWORD'
          : 'check the password (in the URL or RF_PASSWORD) and that the user exists and is enabled: ACL GETUSER <user>',
        cause: err,
      },
    );
  }

  /** A user without +client|setname: the ACL, not rf, is what needs changing. */
  private setnameError(err: unknown): unknown {
    if (!(err instanceof RedisReplyError) || err.prefix !== 'NOPERM') return err;
    const user = this.endpoint.username ?? 'default';
    return new RfError(
      'RF_AUTH',
      `user ${JSON.stringify(user)} may not run CLIENT SETNAME on ${this.where}: ${err.message}`,
      {
        details: { peer: this.where, user, command: 'client|setname' },
        hint: 'grant the user what rf needs: `rf doctor` (run as an admin) prints the ACL SETUSER line',
        cause: err,
      },
    );
  }

  private selectError(err: unknown): unknown {
    if (!(err instanceof RedisReplyError) || !err.message.includes('out of range')) return err;
    return new RfError(
      'RF_BAD_URL',
      `database ${this.endpoint.db} does not exist on ${this.where}`,
      {
        details: { peer: this.where, db: this.endpoint.db },
        hint: "use a database number below the server's `databases` setting (CONFIG GET databases)",
        cause: err,
      },
    );
  }
}

/** Parses INFO text (`# Section` headers, `key:value` lines, CRLF) into key → value. */
export function parseInfo(text: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const line of text.split('\r\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const colon = line.indexOf(':');
    if (colon > 0) fields[line.slice(0, colon)] = line.slice(colon + 1);
  }
  return fields;
}

/** Error replies inside an array (EXEC results) come from the parser as its own error class. */
function wrapNestedErrors(reply: unknown[]): unknown[] {
  for (let i = 0; i < reply.length; i++) {
    const item = reply[i];
    if (item instanceof Error) reply[i] = new RedisReplyError(item.message);
    else if (Array.isArray(item)) wrapNestedErrors(item);
  }
  return reply;
}

function clampTimer(ms: number): number {
  return Math.min(Math.max(ms, 0), MAX_TIMER_MS);
}
