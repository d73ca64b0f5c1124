import { readPasswordFile, redisConnection } from '../config.js';
import { SentinelListener } from '../daemon/sentinel-listener.js';
import { RfError } from '../errors.js';
import { createLogger } from '../logger.js';
import { type RedisEndpoint, redactUrl } from '../redis-url.js';
import type { ListenFlags } from './listen.js';
import {
  echoedOptions,
  echoedRepo,
  metricsSetting,
  refuseFlags,
  rollSetting,
  runUntilSignal,
  shardRepo,
  sourceSettings,
  warnWideMetrics,
} from './listen-run.js';
import { reportError } from './output.js';

/** What rf listen --sentinel does not do yet: refused rather than silently ignored. */
const NOT_WITH_SENTINEL: Array<[keyof ListenFlags, string]> = [
  ['aofDir', '--aof-dir'],
  ['ingest', '--ingest'],
];

/** `rf listen --sentinel … --master-name N`: the master Sentinel names, through failovers. */
export async function run(options: ListenFlags, sourceFrom?: string): Promise<number> {
  process.title = `rf listen --sentinel ${options.name}`;
  process.umask(0o077);
  const log = createLogger({ level: options.logLevel });
  const began = Date.now();
  let listener: SentinelListener;
  try {
    const { sentinels, masterName, masterAuth, tlsOptions } = sentinelFlags(options, sourceFrom);
    const {
      sourceUrl: _u,
      endpoint: _e,
      ...settings
    } = sourceSettings(options, sentinels[0]!, tlsOptions);
    const repo = await shardRepo(options);
    listener = new SentinelListener(
      {
        ...settings,
        ...metricsSetting(options),
        ...repo,
        baseEveryMs: options.baseEvery,
        ...rollSetting(options, log),
        retainMs: options.retain,
        sentinels,
        masterName,
        masterAuth,
        refreshMs: 5_000,
      },
      log,
    );
    log.info(
      {
        options: {
          ...echoedOptions(options, { host: '', port: 0, db: 0, ...masterAuth }),
          source: null,
          sentinel: options.sentinel.map(redactUrl),
          masterName,
          masterUser: options.masterUser ?? null,
          baseEvery: options.baseEvery,
          rollBaseEvery: options.rollBaseEvery ?? null,
          retain: options.retain,
          sentinelPasswordFrom: options.sentinelPasswordFile
            ? 'file'
            : sentinels.some((s) => s.password !== undefined)
              ? 'url'
              : 'none',
          ...echoedRepo(options),
        },
      },
      'rf listen starting',
    );
    warnWideMetrics(options, log);
  } catch (err) {
    return reportError(err, options.json === true);
  }
  return runUntilSignal(listener, log, began, options.json === true, () => {
    const s = listener.status();
    return {
      master: s.master,
      sessions: s.sessions,
      reconnects: s.reconnects,
      durableOffset: s.session?.durableOffset ?? null,
    };
  });
}

/** The sentinels and how to log in to them and to the master they name, from the flags. */
function sentinelFlags(options: ListenFlags, sourceFrom: string | undefined) {
  if (options.cluster === true) {
    throw new RfError('RF_USAGE', '--sentinel and --cluster are two ways to find the source', {
      details: { flags: ['--sentinel', '--cluster'] },
      hint: 'give --sentinel … --master-name N for a Sentinel-managed master, or --cluster --source for a Redis Cluster',
    });
  }
  if (sourceFrom === 'cli') {
    throw new RfError(
      'RF_USAGE',
      '--sentinel finds the master itself: --source is not taken with it',
      {
        details: { flags: ['--sentinel', '--source'], source: redactUrl(options.source) },
        hint: 'leave out --source, or leave out --sentinel and --master-name to archive that server directly',
      },
    );
  }
  const masterName = options.masterName;
  if (options.sentinel.length === 0 || masterName === undefined || masterName === '') {
    throw new RfError('RF_USAGE', '--sentinel and --master-name go together', {
      details: { sentinel: options.sentinel.map(redactUrl), masterName: masterName ?? null },
      hint: 'give --sentinel redis://<sentinel>:26379 (once per sentinel) and --master-name <name in sentinel monitor>',
    });
  }
  refuseFlags(options, NOT_WITH_SENTINEL, '--sentinel', 'archive the master with --source');
  // A sentinel has its own password (requirepass in sentinel.conf): RF_PASSWORD is the master's.
  const connections = options.sentinel.map((url) =>
    redisConnection(
      url,
      {
        ...(options.sentinelPasswordFile === undefined
          ? {}
          : { passwordFile: options.sentinelPasswordFile }),
        ...(options.tlsCa === undefined ? {} : { tlsCa: options.tlsCa }),
        ...(options.tlsCert === undefined ? {} : { tlsCert: options.tlsCert }),
        ...(options.tlsKey === undefined ? {} : { tlsKey: options.tlsKey }),
      },
      {},
    ),
  );
  const sentinels = connections.map((c) => c.endpoint);
  const tls = sentinels[0]!.tls;
  if (sentinels.some((s) => s.tls !== tls)) {
    throw new RfError('RF_USAGE', 'the --sentinel URLs mix redis:// and rediss://', {
      details: { sentinel: options.sentinel.map(redactUrl) },
      hint: 'write every sentinel as rediss:// for TLS (the master is then reached over TLS too), or every one as redis://',
    });
  }
  const password =
    options.passwordFile !== undefined
      ? readPasswordFile(options.passwordFile)
      : process.env.RF_PASSWORD || undefined;
  if (options.masterUser !== undefined && password === undefined) {
    throw new RfError('RF_USAGE', `--master-user ${options.masterUser} needs a password`, {
      details: { masterUser: options.masterUser },
      hint: 'give the master’s password with --password-file FILE, or set RF_PASSWORD',
    });
  }
  const masterAuth: Pick<RedisEndpoint, 'username' | 'password' | 'tls'> = {
    tls,
    ...(options.masterUser === undefined ? {} : { username: options.masterUser }),
    ...(password === undefined ? {} : { password }),
  };
  const tlsOptions = connections[0]!.tlsOptions;
  return { sentinels, masterName, masterAuth, ...(tlsOptions ? { tlsOptions } : {}) };
}
