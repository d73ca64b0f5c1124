import { parseIngestGrants } from '../aof/index.js';
import { readOptionFile, redisConnection } from '../config.js';
import { type ListenConfig, Listener } from '../daemon/listener.js';
import { RfError } from '../errors.js';
import { isLoopback, parseListen } from '../listen-address.js';
import { createLogger } from '../logger.js';
import type { RepoFlags } from '../repo/open.js';
import { warnIfSharedSecret } from '../warnings.js';
import {
  echoedOptions,
  echoedRepo,
  metricsSetting,
  repoClient,
  rollSetting,
  runUntilSignal,
  sourceSettings,
  warnWideMetrics,
} from './listen-run.js';
import { reportError } from './output.js';

export interface ListenOptions {
  source: string;
  store: string;
  name: string;
  passwordFile?: string;
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
  /** Sizes in bytes and durations in ms, as options.ts parsed them; null turns a feature off. */
  segmentSize: number;
  flushInterval: number;
  replTimeout: number;
  connectTimeout: number;
  logLevel: string;
  baseEvery: number | null;
  /** In ms; absent: no rolled bases. */
  rollBaseEvery?: number;
  redisServer?: string;
  metrics?: string;
  retain: number | null;
  localRetain: number | null;
  aofDir?: string;
  chunkSize: number;
  chunkPause: number;
  rewriteAt: string;
  rewriteTimeout: number;
  tz?: string;
  ingest?: string;
  ingestTokenFile?: string;
  ingestTlsCert?: string;
  ingestTlsKey?: string;
  ingestInsecure?: boolean;
  ingestMaxChunk: number;
  json?: boolean;
  cluster?: boolean;
  /** Sentinel URLs (none: not --sentinel), the master's name there, and their credentials. */
  sentinel: string[];
  masterName?: string;
  masterUser?: string;
  sentinelPasswordFile?: string;
}

export type ListenFlags = ListenOptions & RepoFlags;

/** `sourceFrom`: where --source came from (commander's value source: cli, env, config, default). */
export async function run(options: ListenFlags, sourceFrom?: string): Promise<number> {
  if (options.sentinel.length > 0 || options.masterName !== undefined)
    return (await import('./listen-sentinel.js')).run(options, sourceFrom);
  if (options.cluster === true) return (await import('./listen-cluster.js')).run(options);
  // The command line may hold a password (--source redis://user:pw@…): `ps` shows this instead.
  process.title = `rf listen ${options.name}`;
  // The archive holds every value the master ever had: nobody else reads it (dirs 0700, files 0600).
  process.umask(0o077);
  const log = createLogger({ level: options.logLevel });
  const began = Date.now();
  let listener: Listener;
  try {
    const { endpoint, tlsOptions } = redisConnection(options.source, options);
    const repo = await repoClient(options);
    listener = new Listener(
      {
        ...sourceSettings(options, endpoint, tlsOptions),
        baseEveryMs: options.baseEvery,
        ...rollSetting(options, log),
        ...metricsSetting(options),
        retainMs: options.retain,
        ...(options.aofDir === undefined
          ? {}
          : {
              aof: {
                dir: options.aofDir,
                chunkSize: options.chunkSize,
                chunkPauseMs: options.chunkPause,
                rewriteAt: options.rewriteAt,
                rewriteTimeoutMs: options.rewriteTimeout,
                ...(options.tz === undefined ? {} : { tz: options.tz }),
              },
            }),
        ...(options.ingest === undefined ? {} : { ingest: ingestConfig(options) }),
        ...(repo === undefined ? {} : { repo, localRetainMs: options.localRetain }),
      },
      log,
    );
    // The first line echoes the effective options, secrets redacted (pgBackRest does the same).
    log.info(
      {
        options: {
          ...echoedOptions(options, endpoint),
          baseEvery: options.baseEvery,
          rollBaseEvery: options.rollBaseEvery ?? null,
          retain: options.retain,
          ...echoedRepo(options),
        },
      },
      'rf listen starting',
    );
    if (options.ingest !== undefined && options.ingestInsecure === true) {
      if (!isLoopback(parseListen('--ingest', options.ingest).host)) {
        log.warn(
          { ingest: options.ingest },
          '--ingest-insecure: the token and the AOF cross the network in clear',
        );
      }
    }
    warnWideMetrics(options, log);
  } catch (err) {
    return reportError(err, options.json === true);
  }

  return runUntilSignal(listener, log, began, options.json === true, () => summary(listener));
}

function summary(listener: Listener) {
  const s = listener.status();
  return {
    sessions: s.sessions,
    reconnects: s.reconnects,
    durableOffset: s.session?.durableOffset ?? null,
  };
}

/** The receiving end for `rf ship`: a bearer token is required, TLS where a certificate is given. */
function ingestConfig(options: ListenOptions): NonNullable<ListenConfig['ingest']> {
  const grants =
    options.ingestTokenFile !== undefined
      ? parseIngestGrants(
          readTokenFile('--ingest-token-file', options.ingestTokenFile),
          '--ingest-token-file',
          options.name,
        )
      : parseIngestGrants(process.env.RF_INGEST_TOKEN ?? '', 'RF_INGEST_TOKEN', options.name);
  if (grants.length === 0) {
    throw new RfError('RF_USAGE', '--ingest needs a bearer token that rf ship must present', {
      hint: 'give --ingest-token-file FILE (or RF_INGEST_TOKEN); rf ship takes the same token',
    });
  }
  if ((options.ingestTlsCert === undefined) !== (options.ingestTlsKey === undefined)) {
    throw new RfError(
      'RF_USAGE',
      'TLS for --ingest needs both --ingest-tls-cert and --ingest-tls-key',
    );
  }
  const { host } = parseListen('--ingest', options.ingest!);
  if (!isLoopback(host) && options.ingestTlsCert === undefined && options.ingestInsecure !== true) {
    throw new RfError(
      'RF_USAGE',
      `--ingest ${options.ingest} is reachable beyond this host, without TLS: rf ship's token and the AOF would cross the network in clear`,
      {
        details: { ingest: options.ingest },
        hint: 'give --ingest-tls-cert and --ingest-tls-key; or --ingest-insecure on a network you trust; or --ingest 127.0.0.1:PORT behind a tunnel',
      },
    );
  }
  return {
    listen: options.ingest!,
    grants,
    maxChunkBytes: options.ingestMaxChunk,
    ...(options.ingestTlsCert !== undefined && options.ingestTlsKey !== undefined
      ? {
          tls: {
            cert: readOptionFile('--ingest-tls-cert', options.ingestTlsCert),
            key: readOptionFile('--ingest-tls-key', options.ingestTlsKey),
          },
        }
      : {}),
  };
}

/** A file of tokens, read whole. */
function readTokenFile(flag: string, file: string): string {
  const text = readOptionFile(flag, file).toString('utf8');
  warnIfSharedSecret(flag, file);
  return text;
}
