import { DEFAULT_REWRITE_AT } from '../aof/defaults.js';
import type { AofHandle } from '../aof/index.js';
import { readOptionFile, readSecretFile, redisConnection } from '../config.js';
import { isRfError, RfError } from '../errors.js';
import { redactUrl } from '../redis-url.js';
import { out, reportError } from './output.js';

export interface ShipOptions {
  aofDir: string;
  to: string;
  name: string;
  token?: string;
  tokenFile?: string;
  /** Bytes and ms, as options.ts parsed them. */
  chunkSize: number;
  chunkPause: number;
  /** The Redis whose AOF this is: checked for appendonly, and sent BGREWRITEAOF at --rewrite-at. */
  source?: string;
  passwordFile?: string;
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
  /** CA of an https receiver. */
  toCa?: string;
  rewriteAt?: string;
  rewriteTimeout: number;
  tz?: string;
  logLevel: string;
  json?: boolean;
  /** Stops the shipper (tests); SIGTERM and SIGINT do the same. */
  signal?: AbortSignal;
  env?: NodeJS.ProcessEnv;
}

/**
 * `rf ship`: runs on the Redis host, follows its AOF and pushes checksummed chunks to
 * `rf listen --ingest` on the backup host. Runs until stopped (exit 0) or until something it
 * cannot get past (a refused token, a conflicting chunk, an AOF that diverged).
 */
export async function run(options: ShipOptions): Promise<number> {
  const env = options.env ?? process.env;
  const json = options.json === true;
  // Loaded here, not at start-up: every rf command pays for what main.ts imports.
  const [{ HttpSink }, { startCapture }, { createLogger }] = await Promise.all([
    import('../aof/http-sink.js'),
    import('../aof/index.js'),
    import('../logger.js'),
  ]);
  const log = createLogger({ level: options.logLevel, ...(json ? { destination: 2 } : {}) });
  const began = Date.now();
  let handle: AofHandle;
  try {
    const token = readToken(options, env);
    const chunkSize = options.chunkSize;
    const chunkPauseMs = options.chunkPause;
    const rewriteTimeoutMs = options.rewriteTimeout;
    const redis = options.source === undefined ? undefined : redisTarget(options);
    const sink = new HttpSink({
      url: options.to,
      token,
      source: options.name,
      log,
      ...(options.toCa ? { ca: readOptionFile('--to-ca', options.toCa) } : {}),
      startupDeadlineMs: 15_000,
    });
    // The first line echoes the effective options, secrets left out (pgBackRest does the same).
    log.info(
      {
        options: {
          aofDir: options.aofDir,
          to: options.to,
          name: options.name,
          chunkSize,
          chunkPauseMs,
          source: options.source === undefined ? null : redactUrl(options.source),
          rewriteAt: options.rewriteAt ?? (redis ? DEFAULT_REWRITE_AT : 'off'),
          tokenFrom:
            options.token !== undefined ? 'flag' : options.tokenFile !== undefined ? 'file' : 'env',
        },
      },
      'rf ship starting',
    );
    handle = await startCapture({
      sink,
      source: options.name,
      aofDir: options.aofDir,
      chunkSize,
      chunkPauseMs,
      log,
      rewriteTimeoutMs,
      ...(options.rewriteAt === undefined ? {} : { rewriteAt: options.rewriteAt }),
      ...(options.tz === undefined ? {} : { tz: options.tz }),
      ...(redis === undefined ? {} : { redis }),
    });
  } catch (err) {
    return reportError(err, json);
  }

  const stop = () => void handle.stop();
  const onSignal = (signal: NodeJS.Signals) => {
    log.info({ signal }, 'stopping: finishing the send in progress');
    stop();
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  options.signal?.addEventListener('abort', stop, { once: true });
  try {
    await handle.done;
    const s = handle.status();
    const summary = {
      chunks: s.chunks,
      bytes: s.bytes,
      duplicates: s.duplicates,
      bases: s.bases,
      seconds: (Date.now() - began) / 1000,
    };
    log.info(summary, 'rf ship stopped');
    if (json) out.json({ ok: true, ...summary });
    else
      out.note(
        `rf ship: stopped after ${summary.seconds.toFixed(1)} s; ${summary.chunks} chunks (${summary.bytes} bytes) and ${summary.bases} bases shipped`,
      );
    return 0;
  } catch (err) {
    log.error(
      {
        err: isRfError(err) ? err.toJSON() : { message: String(err) },
        seconds: (Date.now() - began) / 1000,
      },
      'rf ship failed',
    );
    await handle.stop();
    return reportError(err, json);
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    options.signal?.removeEventListener('abort', stop);
  }
}

function readToken(options: ShipOptions, env: NodeJS.ProcessEnv): string {
  let token =
    options.token ??
    (options.tokenFile !== undefined
      ? readSecretFile('--token-file', options.tokenFile)
      : env.RF_TOKEN);
  token = token?.trim();
  if (token === undefined || token === '') {
    throw new RfError('RF_USAGE', 'rf ship needs the receiver’s bearer token', {
      hint: 'give --token-file FILE (or RF_TOKEN, or --token): the --ingest-token of the rf listen it ships to',
    });
  }
  return token;
}

function redisTarget(options: ShipOptions) {
  return { ...redisConnection(options.source!, options), url: options.source! };
}
