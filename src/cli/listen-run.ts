import type tls from 'node:tls';
import { REPO_DRAIN_MS, type RepoSetting } from '../daemon/repo-upload.js';
import type { RollSchedule } from '../daemon/roll-bases.js';
import { isRfError, RfError } from '../errors.js';
import { isLoopback, parseListen } from '../listen-address.js';
import type { Logger } from '../logger.js';
import { type RedisEndpoint, redactUrl } from '../redis-url.js';
import type { RepoClient } from '../repo/client.js';
import { repoFromFlags } from '../repo/open.js';
import { rollBase, SCRATCH_IDLE_MS } from '../restore/compact.js';
import type { ListenFlags, ListenOptions } from './listen.js';
import { reportError } from './output.js';

/** What every listener takes from rf listen's flags: the source, the store, the sessions. */
export function sourceSettings(
  options: ListenOptions,
  endpoint: RedisEndpoint,
  tlsOptions: tls.ConnectionOptions | undefined,
) {
  return {
    sourceUrl: options.source,
    endpoint,
    ...(tlsOptions ? { tlsOptions } : {}),
    store: options.store,
    name: options.name,
    connectTimeoutMs: options.connectTimeout,
    readTimeoutMs: options.replTimeout,
    maxSegmentBytes: options.segmentSize,
    flushIntervalMs: options.flushInterval,
    ackIntervalMs: 1000,
    listeningPort: 0,
  };
}

/** --metrics as a listener takes it. */
export function metricsSetting(options: ListenOptions): {
  metrics?: { host: string; port: number };
} {
  return options.metrics === undefined
    ? {}
    : { metrics: parseListen('--metrics', options.metrics) };
}

/**
 * --roll-base-every: the roll the daemon runs on the store it owns, up to the newest write of the
 * source it is given (the one --source archives, or each cluster shard's).
 */
function rollSchedule(options: ListenFlags, everyMs: number, log: Logger): RollSchedule {
  return {
    everyMs,
    roll: async (store, source) => {
      const result = await rollBase(store, {
        name: source,
        until: 'latest',
        tz: 'UTC',
        now: Date.now(),
        ...(options.redisServer === undefined ? {} : { redisServer: options.redisServer }),
        idleTimeoutMs: SCRATCH_IDLE_MS,
        log: log.child({ job: 'rolled base', source }),
      });
      return result.built ? result.base : null;
    },
  };
}

/** --roll-base-every as a listener takes it (absent: no rolled bases). */
export function rollSetting(options: ListenFlags, log: Logger): { rollBases?: RollSchedule } {
  return options.rollBaseEvery === undefined
    ? {}
    : { rollBases: rollSchedule(options, options.rollBaseEvery, log) };
}

/** After the first log line: metrics served beyond this host are allowed, and said. */
export function warnWideMetrics(options: ListenOptions, log: Logger): void {
  if (options.metrics !== undefined && !isLoopback(parseListen('--metrics', options.metrics).host))
    log.warn({ metrics: options.metrics }, 'metrics are served beyond this host');
}

/**
 * The options every rf listen's first log line echoes, secrets redacted (pgBackRest does the
 * same); the password only by where it came from.
 */
export function echoedOptions(options: ListenOptions, endpoint: RedisEndpoint) {
  return {
    source: redactUrl(options.source),
    store: options.store,
    name: options.name,
    segmentSize: options.segmentSize,
    flushInterval: options.flushInterval,
    replTimeout: options.replTimeout,
    tls: endpoint.tls,
    passwordFrom: options.passwordFile
      ? 'file'
      : endpoint.password !== undefined
        ? 'url-or-env'
        : 'none',
  };
}

/**
 * Runs a daemon until it stops: SIGTERM and SIGINT commit what is buffered and stop it; the last
 * log line says how it ended and how long it ran.
 */
export async function runUntilSignal(
  daemon: { run(): Promise<void>; stop(): void },
  log: Logger,
  began: number,
  json: boolean,
  summary: () => Record<string, unknown>,
): Promise<number> {
  const onSignal = (signal: NodeJS.Signals) => {
    log.info({ signal }, 'stopping: committing what is buffered');
    daemon.stop();
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  try {
    await daemon.run();
    log.info({ seconds: (Date.now() - began) / 1000, ...summary() }, 'rf listen stopped');
    return 0;
  } catch (err) {
    log.error(
      {
        err: isRfError(err) ? err.toJSON() : { message: String(err) },
        seconds: (Date.now() - began) / 1000,
      },
      'rf listen failed',
    );
    return reportError(err, json);
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
  }
}

/**
 * Why the AOF captures stay with one master: the AOF is a file on the master's own host, and the
 * master of a Sentinel source or of a cluster shard moves to another host with each failover.
 */
const AOF_ON_THE_MASTER_HOST: Partial<Record<string, { why: string; instead: string }>> = {
  '--aof-dir': {
    why: 'reads the AOF files on the master’s own host',
    instead:
      'the replication stream is the archive and follows the master; to also keep one host’s AOF, run a separate `rf listen --source redis://<that master> --aof-dir DIR` on that host',
  },
  '--ingest': {
    why: 'takes the AOF that `rf ship` reads on one master’s host',
    instead:
      'the replication stream is the archive and follows the master; to also keep one host’s AOF, point `rf ship` at a separate `rf listen --source redis://<that master> --ingest HOST:PORT`',
  },
};

/**
 * Flags a mode of rf listen does not take: refused with RF_USAGE naming the flag rather than
 * silently ignored (`mode`: `--cluster`, `--sentinel`; `instead`: what to do).
 */
export function refuseFlags(
  options: ListenFlags,
  flags: ReadonlyArray<[keyof ListenFlags, string]>,
  mode: string,
  instead: string,
): void {
  for (const [key, flag] of flags) {
    if (options[key] === undefined) continue;
    const aof = AOF_ON_THE_MASTER_HOST[flag];
    if (aof !== undefined) {
      throw new RfError(
        'RF_USAGE',
        `${flag} is not taken with ${mode}: it ${aof.why}, and with ${mode} the master moves to another host with each failover`,
        { details: { flag }, hint: `leave out ${flag}: ${aof.instead}` },
      );
    }
    throw new RfError('RF_USAGE', `${flag} is not supported with ${mode} yet`, {
      details: { flag },
      hint: `leave out ${flag}, or ${instead}`,
    });
  }
}

/** The bucket --repo names (undefined without it); --local-retain alone is refused. */
export async function repoClient(options: ListenFlags): Promise<RepoClient | undefined> {
  if (options.localRetain !== null && options.repo === undefined) {
    throw new RfError('RF_USAGE', '--local-retain bounds the local copy of what --repo uploads', {
      details: { localRetain: options.localRetain },
      hint: 'give --repo s3://<bucket>/<prefix> with it, or bound the store with --retain',
    });
  }
  return repoFromFlags(options);
}

/** --repo for the listeners whose sources a ShardRunner captures (--cluster, --sentinel). */
export async function shardRepo(options: ListenFlags): Promise<{ repo?: RepoSetting }> {
  const client = await repoClient(options);
  return client === undefined
    ? {}
    : { repo: { client, localRetainMs: options.localRetain, drainMs: REPO_DRAIN_MS } };
}

/** What the first log line says of --repo, as rf listen --source echoes it. */
export function echoedRepo(options: ListenFlags) {
  return {
    repo: options.repo ?? null,
    localRetain: options.localRetain,
    repoEncrypted: options.repoKeyFile !== undefined,
  };
}
