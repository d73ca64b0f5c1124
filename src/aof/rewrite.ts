import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import type tls from 'node:tls';
import { isRfError, RfError } from '../errors.js';
import type { Logger } from '../logger.js';
import { describeEndpoint, type RedisEndpoint } from '../redis-url.js';
import { RedisClient, RedisReplyError } from '../resp/client.js';
import { type ClockTime, isoUtc, nextOccurrence } from '../time.js';
import type { AofCapture } from './capture.js';
import { DEFAULT_REWRITE_TIMEOUT } from './defaults.js';

export interface RedisTarget {
  endpoint: RedisEndpoint;
  tlsOptions?: tls.ConnectionOptions;
}

export interface RewriteOptions {
  capture: AofCapture;
  redis: RedisTarget;
  log: Logger;
  /** How long the drain, the rewrite and the base copy may each take; 30 minutes unless given. */
  timeoutMs?: number;
  /** How often INFO persistence is asked while the rewrite runs. */
  pollMs?: number;
}

export interface RewriteResult {
  startedAt: number;
  rewrittenAt: number;
  finishedAt: number;
  /** The base Redis wrote, as copied into the store. */
  base: { name: string; bytes: number; fileNo: number };
}

const doctorHint = (where: string) =>
  `run \`rf doctor --source redis://${where}\` to see the AOF settings`;

/**
 * One rewrite cycle (the seed's nightly job): stall chunking until the rest of the current incr
 * file is stored, BGREWRITEAOF, poll INFO persistence until `aof_rewrite_in_progress:0` and
 * `aof_rewrite_scheduled:0`, check `aof_last_bgrewrite_status`, then wait for the capture to copy
 * the new base. The capture keeps following the files meanwhile: the new incr Redis opens at the
 * start of the rewrite, and the old one it finishes (aof.c rewriteAppendOnlyFileBackground).
 */
export async function runRewriteCycle(options: RewriteOptions): Promise<RewriteResult> {
  const { capture, log } = options;
  const timeoutMs = options.timeoutMs ?? DEFAULT_REWRITE_TIMEOUT;
  const pollMs = options.pollMs ?? 200;
  const where = describeEndpoint(options.redis.endpoint);
  const startedAt = Date.now();
  log.info({ redis: where }, 'AOF rewrite cycle: storing the rest of the current incr file');
  await withTimeout(
    capture.drain(),
    timeoutMs,
    () =>
      new RfError(
        'RF_TIMEOUT',
        `the AOF capture did not catch up with ${where} within ${timeoutMs} ms before the rewrite`,
        {
          details: { redis: where, timeoutMs, status: capture.status() },
          hint: 'the receiver may be down or slow (see the log); the rewrite is tried again at the next --rewrite-at',
        },
      ),
  );

  const client = await RedisClient.connect(options.redis.endpoint, {
    timeoutMs: 10_000,
    name: 'rf-aof-rewrite',
    ...(options.redis.tlsOptions ? { tlsOptions: options.redis.tlsOptions } : {}),
  });
  // Listening before BGREWRITEAOF: the new base may be copied before INFO says the rewrite ended.
  const abortBase = new AbortController();
  const baseCopied = once(capture, 'base', { signal: abortBase.signal });
  baseCopied.catch(() => undefined);
  try {
    const before = await client.info('persistence');
    if (before.aof_enabled !== '1') {
      throw new RfError('RF_AOF_OFF', `${where} has appendonly off: there is no AOF to rewrite`, {
        details: { redis: where },
        hint: `${doctorHint(where)}; \`rf doctor --fix\` turns appendonly on`,
      });
    }
    const rewritesBefore = Number(before.aof_rewrites ?? 0);
    let reply: string;
    try {
      reply = String(await client.call('BGREWRITEAOF'));
    } catch (err) {
      if (!(err instanceof RedisReplyError)) throw err;
      // aof.c bgrewriteaofCommand: one already running is waited for like ours.
      if (!/already in progress/i.test(err.message)) {
        throw new RfError('RF_AOF_REWRITE', `${where} refused BGREWRITEAOF: ${err.message}`, {
          details: { redis: where, reply: err.message },
          hint: 'see the Redis log; the rewrite is tried again at the next --rewrite-at',
          cause: err,
        });
      }
      reply = err.message;
    }
    log.info({ redis: where, reply }, 'AOF rewrite cycle: BGREWRITEAOF sent');

    const deadline = Date.now() + timeoutMs;
    let info = before;
    for (;;) {
      info = await client.info('persistence');
      const idle = info.aof_rewrite_in_progress === '0' && info.aof_rewrite_scheduled === '0';
      if (
        idle &&
        Number(info.aof_rewrites ?? 0) > rewritesBefore - (/already/i.test(reply) ? 1 : 0)
      )
        break;
      if (Date.now() > deadline) {
        throw new RfError(
          'RF_AOF_REWRITE',
          `the AOF rewrite on ${where} did not finish within ${timeoutMs} ms`,
          {
            details: {
              redis: where,
              timeoutMs,
              inProgress: info.aof_rewrite_in_progress,
              scheduled: info.aof_rewrite_scheduled,
              currentRewriteSeconds: info.aof_current_rewrite_time_sec,
            },
            hint: 'a large dataset rewrites slowly; raise --rewrite-timeout, or check the Redis log for a stuck child',
          },
        );
      }
      await sleep(pollMs);
    }
    if (info.aof_last_bgrewrite_status !== 'ok') {
      throw new RfError(
        'RF_AOF_REWRITE',
        `the AOF rewrite on ${where} failed (aof_last_bgrewrite_status:${info.aof_last_bgrewrite_status})`,
        {
          details: {
            redis: where,
            status: info.aof_last_bgrewrite_status,
            consecutiveFailures: info.aof_rewrites_consecutive_failures,
          },
          hint: 'see the Redis log: a full disk or a failed fork (vm.overcommit_memory) are the usual causes; the capture goes on with the old base',
        },
      );
    }
    const rewrittenAt = Date.now();
    log.info(
      { redis: where, seconds: Number(info.aof_last_rewrite_time_sec) },
      'AOF rewrite cycle: Redis rewrote the AOF; copying the new base',
    );
    const [base] = await withTimeout(
      baseCopied,
      timeoutMs,
      () =>
        new RfError(
          'RF_TIMEOUT',
          `the new AOF base of ${where} was not copied within ${timeoutMs} ms`,
          {
            details: { redis: where, timeoutMs },
            hint: 'check that --aof-dir is the directory this Redis writes (CONFIG GET dir, appenddirname)',
          },
        ),
    );
    const result: RewriteResult = {
      startedAt,
      rewrittenAt,
      finishedAt: Date.now(),
      base: { name: base.name, bytes: base.bytes, fileNo: base.fileNo },
    };
    log.info(
      { redis: where, base: result.base, seconds: (result.finishedAt - startedAt) / 1000 },
      'AOF rewrite cycle done: a new restore starting point',
    );
    return result;
  } finally {
    abortBase.abort();
    await client.close().catch(() => undefined);
  }
}

export interface RewriteScheduleStatus {
  at: string;
  next: number | null;
  last: {
    at: number;
    ok: boolean;
    base?: RewriteResult['base'];
    error?: { code: string; message: string };
  } | null;
}

/**
 * Runs the rewrite cycle once a day at `--rewrite-at` in the given zone. A failed cycle is logged
 * and reported in status; the capture goes on, and the next day tries again.
 */
export class RewriteScheduler {
  private readonly abort = new AbortController();
  private running: Promise<void> | null = null;
  private next: number | null = null;
  private last: RewriteScheduleStatus['last'] = null;

  constructor(
    private readonly clock: ClockTime,
    private readonly tz: string,
    private readonly cycle: Omit<RewriteOptions, 'log'>,
    private readonly log: Logger,
    /** When the next cycle runs, given now; the next --rewrite-at in `tz` unless given (tests). */
    private readonly nextAt: (now: number) => number = (now) => nextOccurrence(clock, now, tz),
    private readonly onFailure?: (err: unknown) => void,
  ) {}

  start(): void {
    this.running ??= this.loop();
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await this.running;
  }

  status(): RewriteScheduleStatus {
    const hh = String(this.clock.hour).padStart(2, '0');
    const mm = String(this.clock.minute).padStart(2, '0');
    return { at: `${hh}:${mm} ${this.tz}`, next: this.next, last: this.last };
  }

  private async loop(): Promise<void> {
    const signal = this.abort.signal;
    while (!signal.aborted) {
      this.next = this.nextAt(Date.now());
      this.log.info({ next: isoUtc(this.next) }, 'next AOF rewrite cycle');
      // Sleeps in steps, so a wall clock that jumps (NTP, suspend) is noticed within a minute.
      while (!signal.aborted && Date.now() < this.next) {
        await sleep(Math.min(this.next - Date.now(), 60_000), undefined, { signal }).catch(
          () => undefined,
        );
      }
      if (signal.aborted) return;
      try {
        const result = await runRewriteCycle({ ...this.cycle, log: this.log });
        this.last = { at: result.finishedAt, ok: true, base: result.base };
      } catch (err) {
        if (signal.aborted) return;
        const code = isRfError(err) ? err.code : 'RF_INTERNAL';
        this.last = { at: Date.now(), ok: false, error: { code, message: (err as Error).message } };
        this.onFailure?.(err);
        this.log.error(
          { err: isRfError(err) ? err.toJSON() : { message: String(err) } },
          'AOF rewrite cycle failed; trying again at the next --rewrite-at',
        );
      }
    }
  }
}

async function withTimeout<T>(p: Promise<T>, ms: number, error: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(error()), Math.min(ms, 2 ** 31 - 1));
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
