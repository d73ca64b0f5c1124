/**
 * The AOF capture, as the rest of rf uses it: `rf listen --aof-dir` (startAofCapture),
 * `rf listen --ingest` (startIngestServer), `rf info` (aofSummary). `rf ship` wires the same
 * pieces with an HttpSink (src/cli/ship.ts).
 */
import { isRfError, RfError } from '../errors.js';
import type { Logger } from '../logger.js';
import { describeEndpoint, redactUrl } from '../redis-url.js';
import { RedisClient } from '../resp/client.js';
import type { Store } from '../store/store.js';
import { type ClockTime, machineZone, parseClockTime } from '../time.js';
import { AofCapture } from './capture.js';
import type { AofCaptureStatus } from './capture-types.js';
import { DEFAULT_CHUNK_SIZE, DEFAULT_REWRITE_AT } from './defaults.js';
import {
  type RedisTarget,
  type RewriteResult,
  RewriteScheduler,
  type RewriteScheduleStatus,
  runRewriteCycle,
} from './rewrite.js';
import { type AofSink, LocalSink } from './sink.js';

export { type AofSummary, aofSummary } from '../store/summary.js';
export { AofCapture } from './capture.js';
export type { AofCaptureStatus } from './capture-types.js';
export { DEFAULT_CHUNK_SIZE, DEFAULT_REWRITE_AT } from './defaults.js';
export { HttpSink } from './http-sink.js';
export {
  type IngestGrant,
  type IngestOptions,
  type IngestServer,
  type IngestTls,
  startIngestServer,
} from './ingest.js';
export { parseIngestGrants } from './ingest-grants.js';
export type { RedisTarget, RewriteResult } from './rewrite.js';
export { type AofSink, LocalSink } from './sink.js';

export interface StartAofCaptureOptions {
  store: Store;
  /** The source name (`--name`). */
  source: string;
  /** `--aof-dir`. */
  aofDir: string;
  /** `--chunk-size` in bytes; 1 MiB unless given. */
  chunkSize?: number;
  /** `--chunk-pause` in ms; 0 unless given. */
  chunkPauseMs?: number;
  /** `--rewrite-at`: `HH:MM`, `off`, or a parsed clock time; 00:00 unless given. Needs `redis`. */
  rewriteAt?: string | ClockTime | 'off';
  /** IANA zone `--rewrite-at` is read in; the machine's unless given. */
  tz?: string;
  /** The Redis whose AOF this is: checked for appendonly, and sent BGREWRITEAOF by the cycle. */
  redis?: RedisTarget & { url?: string };
  log: Logger;
  pollMs?: number;
  lingerMs?: number;
  sizeSampleMs?: number;
  rewriteTimeoutMs?: number;
  /** A scheduled rewrite cycle failed (it runs again at the next --rewrite-at): for counting. */
  onRewriteFailure?: (err: unknown) => void;
}

export interface AofStatus extends AofCaptureStatus {
  source: string;
  rewrite: RewriteScheduleStatus | null;
}

export interface AofHandle {
  /** Settles when the capture stops; rejects with the error that stopped it. */
  readonly done: Promise<void>;
  status(): AofStatus;
  /** Runs the rewrite cycle now (the scheduler runs it at --rewrite-at). Needs `redis`. */
  rewriteNow(): Promise<RewriteResult>;
  stop(): Promise<void>;
  readonly capture: AofCapture;
}

/**
 * Starts following an AOF into a store this process owns (`rf listen --aof-dir`). Resolves once
 * the AOF is found and following has begun; rejects with RF_AOF_OFF (the Redis has appendonly
 * off), RF_AOF_DIR (no AOF where --aof-dir points), RF_AOF_MANIFEST, or RF_USAGE.
 */
export async function startAofCapture(options: StartAofCaptureOptions): Promise<AofHandle> {
  const origin =
    options.redis?.url !== undefined ? redactUrl(options.redis.url) : `aof://${options.aofDir}`;
  return startCapture({ ...options, sink: new LocalSink(options.store, options.source, origin) });
}

/** The same with any sink: `rf ship` passes an HttpSink. */
export async function startCapture(
  options: Omit<StartAofCaptureOptions, 'store'> & { sink: AofSink },
): Promise<AofHandle> {
  const { log } = options;
  const rewriteAt = resolveRewriteAt(options.rewriteAt, options.redis !== undefined);
  if (options.redis !== undefined) await checkAppendOnly(options.redis);
  const capture = new AofCapture({
    aofDir: options.aofDir,
    sink: options.sink,
    chunkSize: options.chunkSize ?? DEFAULT_CHUNK_SIZE,
    chunkPauseMs: options.chunkPauseMs ?? 0,
    log: log.child({ aof: options.source }),
    ...(options.pollMs === undefined ? {} : { pollMs: options.pollMs }),
    ...(options.lingerMs === undefined ? {} : { lingerMs: options.lingerMs }),
    ...(options.sizeSampleMs === undefined ? {} : { sizeSampleMs: options.sizeSampleMs }),
  });
  try {
    await capture.start();
  } catch (err) {
    await capture.stop();
    throw err;
  }
  const cycle =
    options.redis === undefined
      ? null
      : {
          capture,
          redis: options.redis,
          ...(options.rewriteTimeoutMs === undefined
            ? {}
            : { timeoutMs: options.rewriteTimeoutMs }),
        };
  let scheduler: RewriteScheduler | null = null;
  if (cycle !== null && rewriteAt !== 'off') {
    scheduler = new RewriteScheduler(
      rewriteAt,
      options.tz ?? machineZone(),
      cycle,
      log.child({ aof: options.source, cycle: 'rewrite' }),
      undefined,
      options.onRewriteFailure,
    );
    scheduler.start();
  }
  return {
    capture,
    done: capture.done,
    status: () => ({
      ...capture.status(),
      source: options.source,
      rewrite: scheduler?.status() ?? null,
    }),
    rewriteNow: () => {
      if (cycle === null) {
        return Promise.reject(
          new RfError('RF_USAGE', 'the rewrite cycle needs the Redis endpoint', {
            hint: 'give --source so rf can send BGREWRITEAOF',
          }),
        );
      }
      return runRewriteCycle({
        ...cycle,
        log: log.child({ aof: options.source, cycle: 'rewrite' }),
      });
    },
    stop: async () => {
      await scheduler?.stop();
      await capture.stop();
    },
  };
}

/** `--rewrite-at` as given, defaulted: 00:00 with a Redis to send BGREWRITEAOF to, else off. */
export function resolveRewriteAt(
  value: StartAofCaptureOptions['rewriteAt'],
  haveRedis: boolean,
): ClockTime | 'off' {
  if (value === undefined)
    return haveRedis ? (parseClockTime(DEFAULT_REWRITE_AT) as ClockTime) : 'off';
  const parsed = typeof value === 'string' ? parseClockTime(value) : value;
  if (parsed !== 'off' && !haveRedis) {
    throw new RfError('RF_USAGE', '--rewrite-at needs the Redis endpoint to send BGREWRITEAOF to', {
      hint: 'give --source redis://host:port, or --rewrite-at off',
    });
  }
  return parsed;
}

/** Refuses a Redis with appendonly off up front: there would be nothing to follow. */
export async function checkAppendOnly(redis: RedisTarget & { url?: string }): Promise<void> {
  const where = describeEndpoint(redis.endpoint);
  const client = await RedisClient.connect(redis.endpoint, {
    timeoutMs: 10_000,
    ...(redis.tlsOptions ? { tlsOptions: redis.tlsOptions } : {}),
  });
  try {
    const info = await client.info('persistence');
    if (info.aof_enabled !== '1') {
      const url = redis.url === undefined ? `redis://${where}` : redactUrl(redis.url);
      throw new RfError(
        'RF_AOF_OFF',
        `${where} has appendonly off: it writes no AOF for rf to follow`,
        {
          details: { redis: where, aof_enabled: info.aof_enabled ?? null },
          hint: `run \`rf doctor --source ${url}\` to see what rf needs, and \`rf doctor --source ${url} --fix\` to turn appendonly on`,
        },
      );
    }
  } catch (err) {
    if (isRfError(err)) throw err;
    throw new RfError(
      'RF_MASTER_ERROR',
      `${where} refused INFO persistence: ${(err as Error).message}`,
      {
        details: { redis: where },
        hint: 'the user rf logs in as needs +info; `rf doctor` prints the ACL it needs',
        cause: err,
      },
    );
  } finally {
    await client.close().catch(() => undefined);
  }
}
