import { type Command, Option } from 'commander';
import { DEFAULT_REWRITE_AT } from '../aof/defaults.js';
import type { AofHandle } from '../aof/index.js';
import { parseBytes, readOptionFile, readSecretFile, redisConnection } from '../config.js';
import { isRfError, RfError } from '../errors.js';
import { redactUrl } from '../redis-url.js';
import { isValidSourceName } from '../store/keys.js';
import { parseDuration } from '../time.js';
import { out, reportError } from './output.js';

export interface ShipOptions {
  aofDir: string;
  to: string;
  name: string;
  token?: string;
  tokenFile?: string;
  chunkSize: string;
  chunkPause: string;
  /** The Redis whose AOF this is: checked for appendonly, and sent BGREWRITEAOF at --rewrite-at. */
  source?: string;
  passwordFile?: string;
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
  /** CA of an https receiver. */
  toCa?: string;
  rewriteAt?: string;
  rewriteTimeout: string;
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
    if (!isValidSourceName(options.name)) {
      throw new RfError(
        'RF_USAGE',
        `--name ${JSON.stringify(options.name)} is not a valid source name`,
        {
          details: { name: options.name },
          hint: 'letters, digits, dot, dash and underscore, up to 64, starting with a letter or digit',
        },
      );
    }
    const token = readToken(options, env);
    const chunkSize = parseBytes('--chunk-size', options.chunkSize);
    const chunkPauseMs = parseDuration(options.chunkPause, { bareUnit: 'ms' });
    const rewriteTimeoutMs = parseDuration(options.rewriteTimeout, { bareUnit: 'ms' });
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

/** Adds `rf ship` to the program (main.ts calls this). */
export function registerShip(program: Command): Command {
  return program
    .command('ship')
    .description(
      'follow a Redis’s append-only files on its host and push them, in checksummed chunks, to rf listen --ingest',
    )
    .requiredOption(
      '--aof-dir <dir>',
      'the Redis `dir` (CONFIG GET dir) or its appendonlydir; a Redis 6 appendonly.aof works too',
    )
    .requiredOption(
      '--to <url>',
      'the receiver: http(s)://host:port of an `rf listen --ingest host:port`',
    )
    .option('--name <source>', 'name of this source in the receiver’s store', 'default')
    .option(
      '--token <t>',
      'bearer token of the receiver (prefer --token-file or RF_TOKEN: argv is visible to other users)',
    )
    .option('--token-file <file>', 'read the bearer token from the first line of this file')
    .option(
      '--chunk-size <bytes>',
      'largest chunk, cut on command boundaries (k, m, g suffixes)',
      '1m',
    )
    .option(
      '--chunk-pause <ms>',
      'pause between two sends, to spread disk and network load (250ms, 1s)',
      '0',
    )
    .option(
      '--source <redis-url>',
      'the Redis itself: checks appendonly and runs the rewrite cycle (BGREWRITEAOF)',
    )
    .option('--password-file <file>', 'the Redis password, from the first line of this file')
    .option('--tls-ca <file>', 'CA certificate for a rediss:// source')
    .option('--tls-cert <file>', 'client certificate for a rediss:// source')
    .option('--tls-key <file>', 'client key for a rediss:// source')
    .option('--to-ca <file>', 'CA certificate of an https receiver')
    .option(
      '--rewrite-at <HH:MM|off>',
      `daily AOF rewrite cycle, local time (default ${DEFAULT_REWRITE_AT} with --source, else off)`,
    )
    .option('--rewrite-timeout <duration>', 'longest a rewrite cycle step may take', '30m')
    .option('--tz <zone>', 'IANA time zone of --rewrite-at (default: this machine)')
    .option('--log-level <level>', 'trace, debug, info, warn, error', 'info')
    .addOption(new Option('--json', 'machine-readable summary on stdout; logs go to stderr'))
    .addHelpText(
      'after',
      `
Examples:
  RF_TOKEN=$(cat /etc/rf/token) rf ship --aof-dir /var/lib/redis --to http://backup-1:7379 --name cache
  rf ship --aof-dir /var/lib/redis/appendonlydir --to https://backup-1:7379 --to-ca /etc/rf/ca.pem \\
      --token-file /etc/rf/token --name cache --chunk-size 256k --chunk-pause 100ms \\
      --source redis://127.0.0.1:6379 --rewrite-at 03:30

With --chunk-size S and --chunk-pause P, rf ship reads and sends at most S bytes every P.
The receiver runs: rf listen ... --ingest 0.0.0.0:7379 --ingest-token-file /etc/rf/token`,
    )
    .action(async (opts: ShipOptions) => {
      process.exitCode = await run(opts);
    });
}
