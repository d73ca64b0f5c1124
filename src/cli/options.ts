import { readFileSync } from 'node:fs';
import { Option } from 'commander';
import {
  DEFAULT_CHUNK_SIZE,
  DEFAULT_REWRITE_AT,
  DEFAULT_REWRITE_TIMEOUT,
} from '../aof/defaults.js';
import { parseBytes, parseWholeNumber } from '../config.js';
import { isRfError, RfError } from '../errors.js';
import { parseRepoUrl } from '../repo/url.js';
import { isValidSourceName } from '../store/keys.js';
import { parseClockTime, parseDuration, resolveTime } from '../time.js';

/**
 * Every option rf's commands share, and the one parser of each kind of value. Commander runs
 * an option's parser as it reads the command line (and config-file.ts runs the same parser on
 * values from RF_* variables and the config file), so a bad value is RF_USAGE naming the flag
 * before anything connects or is created, and each command's run() gets numbers, not text.
 */

export const DEFAULTS = {
  store: './rf-data',
  source: 'redis://127.0.0.1:6379',
  name: 'default',
  chunkSize: DEFAULT_CHUNK_SIZE,
  chunkPause: 0,
  rewriteAt: DEFAULT_REWRITE_AT,
  rewriteTimeout: DEFAULT_REWRITE_TIMEOUT,
  logLevel: 'info',
} as const;

/** rf's version, from the package.json that ships beside dist/ (and beside src/ in a clone). */
export function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

type Parse<T> = (value: string) => T;

/** An RfError from a value parser, re-coded as RF_USAGE naming the flag it came from. */
function usage(flag: string, value: string, err: unknown): RfError {
  if (isRfError(err) && err.code === 'RF_USAGE') return err;
  return new RfError(
    'RF_USAGE',
    `${flag} ${JSON.stringify(value)}: ${err instanceof Error ? err.message : String(err)}`,
    {
      details: { flag, value },
      ...(isRfError(err) && err.hint !== undefined ? { hint: err.hint } : {}),
      cause: err,
    },
  );
}

function parser<T>(flag: string, parse: Parse<T>): Parse<T> {
  return (value) => {
    try {
      return parse(value);
    } catch (err) {
      throw usage(flag, value, err);
    }
  };
}

export const parse = {
  /** A size with an optional k/m/g suffix: `64k`, `1m`. */
  bytes: (flag: string): Parse<number> => parser(flag, (v) => parseBytes(flag, v)),
  /** A duration with a unit (`250ms`, `2m`, `1h30m`); a bare number only when the flag names its unit. */
  duration: (flag: string, bareUnit?: 'ms' | 's', minMs = 0): Parse<number> =>
    parser(flag, (v) => {
      const ms = parseDuration(v, bareUnit === undefined ? {} : { bareUnit });
      if (ms >= minMs) return ms;
      throw new RfError(
        'RF_USAGE',
        `${flag} takes at least ${minMs} ms, got ${JSON.stringify(v)}`,
        {
          details: { flag, value: v },
        },
      );
    }),
  /** A duration, or a word that turns the feature off (`--base-every off`, `--retain forever`). */
  durationOr: (flag: string, word: string): Parse<number | null> =>
    parser(flag, (v) => (v.trim() === word ? null : parseDuration(v))),
  /** `HH:MM` or `off`, checked now; kept as text since the capture reads it with the same parser. */
  clockTime: (flag: string): Parse<string> =>
    parser(flag, (v) => {
      parseClockTime(v);
      return v;
    }),
  /**
   * A `<time>`, checked for form now (RF_BAD_TIME, exit 2, before the store is opened); kept as
   * text, since what `latest` or `-15m` means is known only once the archive is read.
   */
  time:
    (_flag: string): Parse<string> =>
    (v) => {
      resolveTime(v, { now: Date.now(), tz: 'UTC', latest: 0 });
      return v;
    },
  whole: (flag: string, min = 0): Parse<number> =>
    parser(flag, (v) => parseWholeNumber(flag, v, min)),
  /** A source name becomes a store prefix and a directory: never a path (`../x`, `a/b`). */
  sourceName: (flag: string): Parse<string> =>
    parser(flag, (v) => {
      if (isValidSourceName(v)) return v;
      throw new RfError('RF_USAGE', `${flag} ${JSON.stringify(v)} is not a valid source name`, {
        details: { flag, value: v },
        hint: 'letters, digits, dot, dash and underscore, up to 64, starting with a letter or digit',
      });
    }),
  nonEmpty: (flag: string, what: string): Parse<string> =>
    parser(flag, (v) => {
      if (v !== '') return v;
      throw new RfError('RF_USAGE', `${flag} is empty: it takes ${what}`, {
        details: { flag, value: v },
        hint: `leave ${flag} out to match everything`,
      });
    }),
};

/** `--flag <value>` whose text goes through `parseArg`; `shown` is the default as help prints it. */
export function valueOption<T>(
  flags: string,
  description: string,
  parseArg: Parse<T>,
  defaultValue?: { value: T; shown: string },
): Option {
  const option = new Option(flags, description).argParser((v: string) => parseArg(v));
  return defaultValue === undefined
    ? option
    : option.default(defaultValue.value, defaultValue.shown);
}

/** `--flag <value>` that may be given again: every value, parsed, in order (default none). */
export function repeatable<T>(flags: string, description: string, parseArg: Parse<T>): Option {
  return new Option(flags, description)
    .argParser((v: string, previous: T[] | undefined) => [...(previous ?? []), parseArg(v)])
    .default([], 'none');
}

/**
 * Each roll loads a base and replays the stream in a scratch redis-server on this host: more
 * often than this, the backup host spends its time rebuilding what it just built.
 */
const ROLL_BASE_MIN_MS = 5 * 60_000;

export const options = {
  json: (description = 'machine-readable output') => new Option('--json', description),
  /** With --repo: how long the store keeps what the bucket already holds. */
  localRetain: () =>
    valueOption(
      '--local-retain <duration>',
      'with --repo: keep locally only what restores within this window need, once the bucket holds the rest (36h, forever)',
      parse.durationOr('--local-retain', 'forever'),
      { value: null, shown: 'forever' },
    ),
  store: () => new Option('--store <dir>', 'the archive directory').default(DEFAULTS.store),
  source: (description: string) =>
    new Option('--source <redis-url>', description).default(DEFAULTS.source),
  /** `--name`, checked as a source name; no default means every source (info, verify). */
  name: (description: string, withDefault = true) => {
    const option = new Option('--name <source>', description).argParser(parse.sourceName('--name'));
    return withDefault ? option.default(DEFAULTS.name) : option;
  },
  time: (flags: string, description: string) =>
    valueOption(flags, description, parse.time(flags.split(' ')[0]!)),
  tz: (description: string) => new Option('--tz <zone>', description),
  /** rf listen's rolled bases: how often, and the redis-server that builds them. */
  rollBases: (): Option[] => [
    valueOption(
      '--roll-base-every <duration>',
      'also roll a base forward off the master this often, in a scratch redis-server on this host (at least 5m; default off)',
      parse.duration('--roll-base-every', undefined, ROLL_BASE_MIN_MS),
    ),
    options.redisServer(
      '--roll-base-every: the redis-server (7.0 or newer) that rebuilds the state',
    ),
  ],
  /** rf verify's rebuild of rolled bases, and the redis-server that rebuilds them. */
  rebuildBases: (): Option[] => [
    new Option(
      '--rebuild-bases',
      'also rebuild each rolled base in a scratch redis-server on this host, and compare its DEBUG DIGEST',
    ),
    options.redisServer('--rebuild-bases: the redis-server (7.0 or newer) that rebuilds them'),
  ],
  /** The redis-server a command runs itself, on this host (`what`: what it is used for). */
  redisServer: (what: string) =>
    new Option('--redis-server <path>', `${what} (default: the one on PATH)`),
  logLevel: () =>
    new Option('--log-level <level>', 'how much to log')
      .choices(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'])
      .default(DEFAULTS.logLevel),
  chunkSize: (description: string) =>
    valueOption('--chunk-size <bytes>', description, parse.bytes('--chunk-size'), {
      value: DEFAULTS.chunkSize,
      shown: '1m',
    }),
  chunkPause: (description: string) =>
    valueOption('--chunk-pause <ms>', description, parse.duration('--chunk-pause', 'ms'), {
      value: DEFAULTS.chunkPause,
      shown: '0',
    }),
  rewriteAt: (description: string, withDefault: boolean) => {
    const option = valueOption(
      '--rewrite-at <HH:MM|off>',
      description,
      parse.clockTime('--rewrite-at'),
    );
    return withDefault ? option.default(DEFAULTS.rewriteAt) : option;
  },
  rewriteTimeout: (description: string) =>
    valueOption('--rewrite-timeout <duration>', description, parse.duration('--rewrite-timeout'), {
      value: DEFAULTS.rewriteTimeout,
      shown: '30m',
    }),
  /**
   * The archive in object storage (`--repo s3://bucket/prefix`) and how to reach it; a bad URL
   * is RF_REPO_URL (exit 2) before anything is opened.
   */
  repo: (description: string): Option[] => [
    new Option('--repo <s3-url>', description).argParser((v: string) => {
      parseRepoUrl(v);
      return v;
    }),
    new Option('--s3-endpoint <url>', 'an S3-compatible endpoint (MinIO, Ceph RGW, …), not AWS'),
    new Option('--s3-region <region>', 'the bucket’s region (else AWS_REGION, else us-east-1)'),
    new Option('--s3-path-style', 'address the bucket as endpoint/bucket, not bucket.endpoint'),
    new Option(
      '--repo-key-file <file>',
      'encrypt (and decrypt) every object with this 32-byte key (64 hex digits)',
    ),
  ],
  /**
   * rf listen's source: a master, or with --cluster any node of a Redis Cluster, or with
   * --sentinel whichever master Sentinel names.
   */
  listenSource: (): Option[] => [
    options.source('the master, redis://[user[:password]@]host:port (also REDIS_URL)'),
    new Option(
      '--cluster',
      'the source is any node of a Redis Cluster: archive every shard, following failovers (--retain, --base-every, --roll-base-every per shard; no --aof-dir, --ingest)',
    ),
    repeatable(
      '--sentinel <redis-url>',
      'instead of --source: a sentinel, redis://[user:password@]host:26379 (again for each one); the master it names is archived, followed through failovers (--retain, --base-every, --roll-base-every as with --source; no --aof-dir, --ingest)',
      parse.nonEmpty('--sentinel', 'a sentinel URL'),
    ),
    new Option('--master-name <name>', 'with --sentinel: the master’s name in `sentinel monitor`'),
    new Option(
      '--master-user <user>',
      'with --sentinel: the master’s ACL user (its password: --password-file or RF_PASSWORD)',
    ),
    new Option(
      '--sentinel-password-file <file>',
      'with --sentinel: the sentinels’ password, from the first line of this file',
    ),
  ],
  /** The password file and TLS files of a command that connects to a Redis (`whose`: "the target's"). */
  connection: (whose: string): Option[] => [
    new Option('--password-file <file>', `${whose} password, from the first line of this file`),
    new Option('--tls-ca <file>', `CA certificate for ${whose} rediss://`),
    new Option('--tls-cert <file>', `client certificate for ${whose} rediss://`),
    new Option('--tls-key <file>', `client key for ${whose} rediss://`),
  ],
};
