import { redisConnection } from '../config.js';
import { ClusterListener } from '../daemon/cluster-listener.js';
import { createLogger } from '../logger.js';
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

/** What rf listen --cluster does not do yet: refused rather than silently ignored. */
const NOT_WITH_CLUSTER: Array<[keyof ListenFlags, string]> = [
  ['aofDir', '--aof-dir'],
  ['ingest', '--ingest'],
];

/** `rf listen --cluster`: every shard of a Redis Cluster into one store. */
export async function run(options: ListenFlags): Promise<number> {
  process.title = `rf listen --cluster ${options.name}`;
  process.umask(0o077);
  const log = createLogger({ level: options.logLevel });
  const began = Date.now();
  let listener: ClusterListener;
  try {
    refuseFlags(
      options,
      NOT_WITH_CLUSTER,
      '--cluster',
      'archive each master on its own without --cluster',
    );
    const { endpoint, tlsOptions } = redisConnection(options.source, options);
    const repo = await shardRepo(options);
    listener = new ClusterListener(
      {
        ...sourceSettings(options, endpoint, tlsOptions),
        ...metricsSetting(options),
        ...repo,
        baseEveryMs: options.baseEvery,
        ...rollSetting(options, log),
        retainMs: options.retain,
        refreshMs: 1_000,
      },
      log,
    );
    log.info(
      {
        options: {
          cluster: true,
          ...echoedOptions(options, endpoint),
          ...echoedRepo(options),
          baseEvery: options.baseEvery,
          rollBaseEvery: options.rollBaseEvery ?? null,
          retain: options.retain,
        },
      },
      'rf listen starting',
    );
    warnWideMetrics(options, log);
  } catch (err) {
    return reportError(err, options.json === true);
  }
  return runUntilSignal(listener, log, began, options.json === true, () => ({
    shards: listener.status().shards.map((s) => ({
      id: s.id,
      durableOffset: s.session?.durableOffset ?? null,
      reconnects: s.reconnects,
    })),
  }));
}
