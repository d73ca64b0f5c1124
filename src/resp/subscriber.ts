import type net from 'node:net';
import type tls from 'node:tls';
import RedisParser from 'redis-parser';
import { errnoCode, RfError } from '../errors.js';
import { describeEndpoint, type RedisEndpoint } from '../redis-url.js';
import { openSocket } from './client.js';
import { encodeCommand } from './encode.js';

export interface SubscriberOptions {
  /** Deadline for connecting, for the subscriptions to be confirmed and for each PING's pong. */
  timeoutMs: number;
  /** How often a PING checks that a quiet connection is still there. */
  pingEveryMs: number;
  tlsOptions?: tls.ConnectionOptions;
  onMessage: (channel: string, payload: string) => void;
}

/**
 * A RESP2 pub/sub connection: logs in, SUBSCRIBEs and hands over each message. RedisClient
 * matches every reply to a command, which a subscribed connection's pushes are not, hence this
 * small one of its own. A channel can stay quiet for months (a Sentinel's `+switch-master`), so a
 * PING every `pingEveryMs` proves the peer is still there; `closed` resolves with why it ended.
 */
export class Subscriber {
  readonly closed: Promise<RfError>;
  private failure: RfError | null = null;
  private pingTimer: NodeJS.Timeout | null = null;
  private pongDue: NodeJS.Timeout | null = null;

  private constructor(
    private readonly socket: net.Socket,
    private readonly where: string,
  ) {
    this.closed = new Promise((resolve) => {
      socket.once('close', () => {
        this.clearTimers();
        resolve(
          this.failure ??
            new RfError('RF_CONNECT', `subscription to ${where} closed`, {
              details: { peer: where },
            }),
        );
      });
    });
  }

  /** Resolves once every channel is subscribed; RF_CONNECT, RF_TIMEOUT or RF_AUTH otherwise. */
  static async open(
    endpoint: RedisEndpoint,
    channels: readonly string[],
    options: SubscriberOptions,
  ): Promise<Subscriber> {
    const where = describeEndpoint(endpoint);
    const socket = await openSocket(endpoint, {
      timeoutMs: options.timeoutMs,
      ...(options.tlsOptions === undefined ? {} : { tlsOptions: options.tlsOptions }),
    });
    const sub = new Subscriber(socket, where);
    let pending = channels.length + (endpoint.password === undefined ? 0 : 1);
    let ready: (() => void) | null = null;
    const subscribed = new Promise<void>((resolve) => {
      ready = resolve;
    });
    const parser = new RedisParser({
      returnReply: (reply: unknown) => {
        const words = Array.isArray(reply) ? reply.map(String) : [String(reply)];
        if (words[0] === 'message' && words.length === 3) options.onMessage(words[1]!, words[2]!);
        else if (words[0] === 'pong') sub.ponged();
        else if (pending > 0 && --pending === 0) ready?.();
      },
      returnError: (err: Error) => {
        const refused = /^(WRONGPASS|NOAUTH|NOPERM|ERR invalid password)/.test(err.message);
        sub.fail(
          new RfError(
            refused ? 'RF_AUTH' : 'RF_PROTOCOL',
            `${where} refused the subscription: ${err.message}`,
            {
              details: { peer: where, user: endpoint.username ?? 'default' },
              hint: refused
                ? 'check the password and that the user may SUBSCRIBE to these channels (ACL GETUSER <user>)'
                : `check that ${where} is what it was given as`,
            },
          ),
        );
      },
      returnFatalError: (err: Error) =>
        sub.fail(
          new RfError('RF_PROTOCOL', `${where} sent a reply that is not RESP: ${err.message}`),
        ),
    });
    socket.on('data', (chunk: Buffer) => {
      try {
        parser.execute(chunk);
      } catch (err) {
        sub.fail(
          new RfError('RF_PROTOCOL', `${where} sent a reply that is not RESP`, { cause: err }),
        );
      }
    });
    socket.on('error', (err) =>
      sub.fail(
        new RfError('RF_CONNECT', `subscription to ${where} failed: ${err.message}`, {
          details: { peer: where, errno: errnoCode(err) },
        }),
      ),
    );
    if (endpoint.password !== undefined) {
      socket.write(
        encodeCommand(
          endpoint.username === undefined
            ? ['AUTH', endpoint.password]
            : ['AUTH', endpoint.username, endpoint.password],
        ),
      );
    }
    socket.write(encodeCommand(['SUBSCRIBE', ...channels]));
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<RfError>((resolve) => {
      timer = setTimeout(
        () =>
          resolve(
            new RfError(
              'RF_TIMEOUT',
              `${where} did not confirm SUBSCRIBE within ${options.timeoutMs} ms`,
              {
                details: { peer: where, timeoutMs: options.timeoutMs },
              },
            ),
          ),
        options.timeoutMs,
      );
    });
    try {
      const outcome = await Promise.race([subscribed, sub.closed, timedOut]);
      if (outcome instanceof RfError) {
        sub.fail(outcome);
        throw outcome;
      }
    } finally {
      clearTimeout(timer);
    }
    sub.schedulePing(options.pingEveryMs, options.timeoutMs);
    return sub;
  }

  close(): void {
    this.fail(
      new RfError('RF_CONNECT', `subscription to ${this.where} was closed by rf`, {
        details: { peer: this.where },
      }),
    );
  }

  private schedulePing(everyMs: number, timeoutMs: number): void {
    this.pingTimer = setInterval(() => {
      if (this.pongDue !== null) return;
      this.socket.write(encodeCommand(['PING']));
      this.pongDue = setTimeout(
        () =>
          this.fail(
            new RfError('RF_TIMEOUT', `${this.where} did not answer PING within ${timeoutMs} ms`, {
              details: { peer: this.where, timeoutMs },
            }),
          ),
        timeoutMs,
      );
    }, everyMs);
  }

  private ponged(): void {
    if (this.pongDue !== null) clearTimeout(this.pongDue);
    this.pongDue = null;
  }

  private fail(err: RfError): void {
    this.failure ??= err;
    this.clearTimers();
    this.socket.destroy();
  }

  private clearTimers(): void {
    if (this.pingTimer !== null) clearInterval(this.pingTimer);
    if (this.pongDue !== null) clearTimeout(this.pongDue);
    this.pingTimer = null;
    this.pongDue = null;
  }
}
