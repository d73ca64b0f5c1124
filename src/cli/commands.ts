import { type Command, Option } from 'commander';
import { DEFAULT_REWRITE_AT } from '../aof/defaults.js';
import { effectiveConfig } from './config-file.js';
import { options as o, parse, repeatable, valueOption } from './options.js';
import { out } from './output.js';

/**
 * Every rf command, declared the same way: its options (parsed as commander reads them, see
 * options.ts) and a run() loaded only when the command runs, since every command pays at
 * start-up for what this file imports.
 */

export interface CommandSpec {
  name: string;
  description: string;
  options: Option[];
  /** Long names (`until`) that must have a value once flags, RF_* and the config file are read. */
  required?: string[];
  help: string;
  run: (opts: Record<string, unknown>, cmd: Command) => Promise<number>;
}

const requiredOf = new WeakMap<Command, string[]>();

/** The options a command requires: checked after the config file, not by commander before it. */
export function requiredOptions(cmd: Command): string[] {
  return requiredOf.get(cmd) ?? [];
}

export function register(program: Command, spec: CommandSpec): void {
  const cmd = program.command(spec.name).description(spec.description);
  for (const option of spec.options) cmd.addOption(option);
  cmd.addHelpText('after', `\n${spec.help}`);
  requiredOf.set(cmd, spec.required ?? []);
  cmd.action(async (opts: Record<string, unknown>, self: Command) => {
    process.exitCode = await spec.run(opts, self);
  });
}

// Each run() takes its command's own options type; commander hands over the parsed values.
// biome-ignore lint/suspicious/noExplicitAny: the one place where commander's record meets run().
type AnyRun = (opts: any) => Promise<number>;
export const lazy =
  (load: () => Promise<{ run: AnyRun }>) =>
  async (opts: Record<string, unknown>): Promise<number> =>
    (await load()).run(opts);

export function registerCommands(program: Command): void {
  register(program, {
    name: 'listen',
    description: 'connect to a master as a replica and archive its snapshot and every write',
    options: [
      ...o.listenSource(),
      o.store(),
      o.name('name of this source in the store'),
      ...o.connection('the master’s'),
      new Option(
        '--aof-dir <dir>',
        "also follow the master's append-only files in this directory (same host; not with --cluster or --sentinel, whose master moves with a failover)",
      ),
      o.chunkSize('cut the AOF into chunks of about this size'),
      o.chunkPause('pause between AOF chunks, to spare the live host'),
      o.rewriteAt('run the BGREWRITEAOF cycle daily at this local time', true),
      o.rewriteTimeout('longest a rewrite cycle may take'),
      o.tz('IANA time zone of --rewrite-at (default: this machine)'),
      new Option('--ingest <host:port>', 'accept AOF chunks from rf ship on this address'),
      new Option(
        '--ingest-token-file <file>',
        'tokens rf ship must present, one `<source> <token>` a line (a bare token: this --name); or RF_INGEST_TOKEN',
      ),
      new Option('--ingest-tls-cert <file>', 'serve --ingest over TLS with this certificate'),
      new Option('--ingest-tls-key <file>', 'and this key'),
      new Option(
        '--ingest-insecure',
        'allow --ingest beyond loopback without TLS (the token and the AOF cross the network in clear)',
      ),
      valueOption(
        '--ingest-max-chunk <bytes>',
        'largest AOF chunk --ingest takes (413 past it), and the chunk bytes it holds at once',
        parse.bytes('--ingest-max-chunk'),
        { value: 64 * 1024 * 1024, shown: '64m' },
      ),
      valueOption(
        '--retain <duration>',
        'keep what restores within this window need (7d, 36h, forever); --cluster: every cluster restore',
        parse.durationOr('--retain', 'forever'),
        { value: null, shown: 'forever' },
      ),
      new Option('--metrics <host:port>', 'serve Prometheus metrics on http://host:port/metrics'),
      ...o.repo('also upload what is sealed to this bucket: s3://<bucket>/<prefix>'),
      o.localRetain(),
      valueOption(
        '--base-every <duration>',
        'take a fresh base this often without pausing capture (24h, 6h, off)',
        parse.durationOr('--base-every', 'off'),
        { value: 24 * 3600_000, shown: '24h' },
      ),
      ...o.rollBases(),
      valueOption(
        '--segment-size <bytes>',
        'seal a segment once it holds this many bytes',
        parse.bytes('--segment-size'),
        { value: 1024 * 1024, shown: '1m' },
      ),
      valueOption(
        '--flush-interval <ms>',
        'commit buffered writes at least this often',
        parse.duration('--flush-interval', 'ms', 1),
        { value: 250, shown: '250' },
      ),
      valueOption(
        '--repl-timeout <ms>',
        'give up on a silent master after this long (like repl-timeout)',
        parse.duration('--repl-timeout', 'ms', 1),
        { value: 60_000, shown: '60000' },
      ),
      valueOption(
        '--connect-timeout <ms>',
        'give up connecting after this long',
        parse.duration('--connect-timeout', 'ms', 1),
        { value: 10_000, shown: '10000' },
      ),
      o.logLevel(),
      o.json(),
      new Option('--print-config', 'print the effective configuration, secrets redacted, and exit'),
    ],
    help: `Examples:
  rf listen --source redis://127.0.0.1:6380 --store /var/lib/rf
  RF_PASSWORD=secret rf listen --source redis://rf@redis-1:6379 --name cache`,
    run: async (opts, cmd) => {
      if (opts.printConfig) return printConfig(cmd, opts.json === true);
      return (await import('./listen.js')).run(opts as never, cmd.getOptionValueSource('source'));
    },
  });

  register(program, {
    name: 'info',
    description: 'show what the archive holds and what can be restored',
    options: [
      o.store(),
      ...o.repo('read the archive from this bucket alone: s3://<bucket>/<prefix>'),
      o.name('only this source', false),
      o.tz('IANA time zone for local times (default: this machine)'),
      o.json(),
    ],
    help: `Examples:
  rf info --store /var/lib/rf
  rf info --store /var/lib/rf --json | jq '.sources[0].restorable'`,
    run: lazy(() => import('./info.js')),
  });

  register(program, {
    name: 'restore',
    description:
      'build a Redis dataset as it was at a moment: cut at a transaction boundary, never splitting one',
    options: [
      o.store(),
      ...o.repo('read the archive from this bucket alone: s3://<bucket>/<prefix>'),
      o.time(
        '--until <time>',
        'the moment: ISO 8601 (with Z or an offset, or read in --tz), @<unix>, -15m, latest',
      ),
      new Option(
        '--out <dir>',
        'write a directory that `redis-server --dir DIR --appendonly yes` boots from (the layout of the archived version)',
      ),
      new Option(
        '--layout <layout>',
        'for --out: redis7 (appendonlydir) or redis6 (one appendonly.aof); default: from the archive',
      ).choices(['redis6', 'redis7']),
      new Option('--target <redis-url>', 'load a running, empty Redis instead'),
      new Option(
        '--into <redis-url>',
        'copy selected keys into a running Redis or Redis Cluster that may hold data (RESTORE; never deletes a key)',
      ),
      repeatable(
        '--key <glob>',
        '--into: only keys matching this Redis glob (repeatable; default every key)',
        parse.nonEmpty('--key', 'a Redis glob such as user:* or *'),
      ),
      repeatable(
        '--db <n>',
        '--into: only this database (repeatable; default every one)',
        parse.whole('--db'),
      ),
      new Option(
        '--conflict <mode>',
        '--into: what to do with a selected key the target already holds',
      )
        .choices(['fail', 'skip', 'replace'])
        .default('fail'),
      new Option(
        '--ttl <mode>',
        '--into: the absolute expiry at T (keep), or the time left at T counted from now (shift)',
      )
        .choices(['keep', 'shift'])
        .default('keep'),
      new Option(
        '--functions',
        '--into: copy the function libraries of the state at T too, library by library as --conflict says',
      ),
      o.redisServer('--into: the redis-server that rebuilds the state at T'),
      o.name('the source to restore'),
      new Option('--from <what>', 'where the writes come from')
        .choices(['stream', 'aof', 'auto'])
        .default('auto'),
      o.tz('IANA time zone for times without an offset (default: this machine)'),
      new Option('--dry-run', 'print the plan and write nothing'),
      new Option(
        '--accept-imprecise',
        'inside an imprecise window no record places, cut by the latest time each write can have run at instead of refusing',
      ),
      ...o.connection('the target’s'),
      new Option(
        '--serve-host <addr>',
        'address the target connects back to (default: the one rf reaches it from)',
      ),
      valueOption(
        '--target-timeout <ms>',
        'longest wait with no progress from the target (120000, 2m)',
        parse.duration('--target-timeout', 'ms', 1),
        { value: 120_000, shown: '120000' },
      ),
      o.json(),
    ],
    required: ['until'],
    help: `Examples:
  rf restore --store /var/lib/rf --until "2026-11-24T15:12:01+01:00" --out /srv/restored
  rf restore --store /var/lib/rf --until "2026-11-24 15:12:01" --tz Europe/Paris --dry-run
  rf restore --store /var/lib/rf --until -15m --target redis://10.0.0.7:6379
  rf restore --store /var/lib/rf --until latest --out /srv/for-6.2 --layout redis6
  rf restore --store /var/lib/rf --until "2026-11-24T15:12:00Z" --into redis://10.0.0.7:6379 \\
     --key 'user:*' --conflict skip --dry-run`,
    run: lazy(() => import('./restore.js')),
  });

  register(program, {
    name: 'compact',
    description:
      'roll a base forward off the master: rebuild the state at a moment in a scratch redis-server and store it as a base',
    options: [
      o.store(),
      o.name('the source to compact'),
      valueOption(
        '--until <time>',
        'the moment the base stands for (cut at the transaction boundary at or before it): ISO 8601, @<unix>, -15m, latest',
        parse.time('--until'),
        { value: 'latest', shown: 'latest' },
      ),
      o.redisServer('the redis-server (7.0 or newer) that rebuilds the state'),
      o.tz('IANA time zone for times without an offset (default: this machine)'),
      o.json(),
    ],
    help: `Run it while rf listen is stopped (or use rf listen --roll-base-every). The base is stored
checksummed, at its exact offset, marked as built by rf, with the scratch's DEBUG DIGEST.

Examples:
  rf compact --store /var/lib/rf
  rf compact --store /var/lib/rf --until "2026-11-24T15:00:00Z" --redis-server /usr/local/bin/redis-server`,
    run: lazy(() => import('./compact.js')),
  });

  register(program, {
    name: 'verify',
    description:
      're-read the whole archive: checksums, contiguous offsets, bases, commands, AOF chunks, and the stream against the AOF',
    options: [
      o.store(),
      ...o.repo('read the archive from this bucket alone: s3://<bucket>/<prefix>'),
      o.name('only this source', false),
      ...o.rebuildBases(),
      o.json(),
    ],
    help: `Exit codes: 0 the archive is whole, 1 problems found (each with its location and time range), 4 unreadable.

Examples:
  rf verify --store /var/lib/rf --rebuild-bases
  rf verify --store /var/lib/rf --name cache --json | jq '.sources[].problems'`,
    run: lazy(() => import('./verify.js')),
  });

  register(program, {
    name: 'log',
    description: 'print the writes of a time window, one per line: time, db, offset, command',
    options: [
      o.store(),
      ...o.repo('read the archive from this bucket alone: s3://<bucket>/<prefix>'),
      o.name('the source to read'),
      o.time('--since <time>', 'from this moment (default: the first write archived)'),
      o.time('--until <time>', 'up to this moment, inclusive (default: the last write archived)'),
      valueOption(
        '--key <glob>',
        'only writes to a key matching this Redis glob (* ? [..] \\): the key arguments of known commands, every argument of others; FLUSHDB, FLUSHALL and SWAPDB always match',
        parse.nonEmpty('--key', 'a Redis glob such as user:* or *'),
      ),
      valueOption('--db <n>', 'only writes to this database', parse.whole('--db')),
      new Option('--command <name>', 'only this command (case-insensitive), e.g. DEL'),
      o.tz('IANA time zone for times without an offset, and for the times shown'),
      o.json(),
    ],
    help: `Examples:
  rf log --store /var/lib/rf --since -15m --key 'user:42:*'
  rf log --store /var/lib/rf --since "2026-11-24 15:00" --until "2026-11-24 15:05" --tz Europe/Paris
  rf log --store /var/lib/rf --since -1h --command DEL --db 0 --json | jq -c '.args'`,
    run: lazy(() => import('./log.js')),
  });

  register(program, {
    name: 'ship',
    description:
      'follow a Redis’s append-only files on its host and push them, in checksummed chunks, to rf listen --ingest',
    options: [
      new Option(
        '--aof-dir <dir>',
        'the Redis `dir` (CONFIG GET dir) or its appendonlydir; a Redis 6 appendonly.aof works too',
      ),
      new Option(
        '--to <url>',
        'the receiver: http(s)://host:port of an `rf listen --ingest host:port`',
      ),
      o.name('name of this source in the receiver’s store'),
      new Option(
        '--token <t>',
        'bearer token of the receiver (prefer --token-file or RF_TOKEN: argv is visible to other users)',
      ),
      new Option('--token-file <file>', 'read the bearer token from the first line of this file'),
      o.chunkSize('largest chunk, cut on command boundaries (k, m, g suffixes)'),
      o.chunkPause('pause between two sends, to spread disk and network load (250ms, 1s)'),
      new Option(
        '--source <redis-url>',
        'the Redis itself: checks appendonly and runs the rewrite cycle (BGREWRITEAOF)',
      ),
      ...o.connection('the Redis’s'),
      new Option('--to-ca <file>', 'CA certificate of an https receiver'),
      o.rewriteAt(
        `daily AOF rewrite cycle, local time (default ${DEFAULT_REWRITE_AT} with --source, else off)`,
        false,
      ),
      o.rewriteTimeout('longest a rewrite cycle step may take'),
      o.tz('IANA time zone of --rewrite-at (default: this machine)'),
      o.logLevel(),
      o.json('machine-readable summary on stdout; logs go to stderr'),
    ],
    required: ['aof-dir', 'to'],
    help: `Examples:
  rf ship --aof-dir /var/lib/redis --to http://127.0.0.1:7379 --token-file /etc/rf/token --name cache
  rf ship --aof-dir /var/lib/redis/appendonlydir --to https://backup-1:7379 --to-ca /etc/rf/ca.pem \\
      --token-file /etc/rf/token --name cache --chunk-size 256k --chunk-pause 100ms \\
      --source redis://127.0.0.1:6379 --rewrite-at 03:30

With --chunk-size S and --chunk-pause P, rf ship reads and sends at most S bytes every P.
The receiver runs: rf listen ... --ingest 10.0.0.5:7379 --ingest-tls-cert cert.pem --ingest-tls-key key.pem \\
      --ingest-token-file /etc/rf/ingest-tokens   (a line \`cache <token>\` for this shipper)`,
    run: lazy(() => import('./ship.js')),
  });

  register(program, {
    name: 'doctor',
    description:
      'check and explain the Redis settings rf relies on; --fix applies what CONFIG SET can',
    options: [
      o.source(
        'the Redis to check, redis://[user[:password]@]host:port (also RF_SOURCE, REDIS_URL); log in as an admin',
      ),
      new Option(
        '--fix',
        'apply the fixes with CONFIG SET, then CONFIG REWRITE if the server has a config file',
      ),
      new Option('--rf-user <name>', 'the ACL user rf logs in as').default('rf'),
      valueOption(
        '--reconnect-window <duration>',
        'how long a disconnect rf listen should resume from without a full sync (sizes repl-backlog-size)',
        parse.duration('--reconnect-window', 's'),
        { value: 60_000, shown: '60s' },
      ),
      ...o.connection('the Redis’s'),
      o.json(),
    ],
    help: `Checks: appendonly yes; auto-aof-rewrite-percentage 0 (only rf rewrites); aof-timestamp-enabled yes;
repl-backlog-size for the reconnect window at the write rate measured now; client-output-buffer-limit
replica; an ACL user with only what rf needs (the exact ACL SETUSER line is printed).
Exit 0 when all is well, 1 when something needs attention, 3 when the Redis cannot be reached.

Examples:
  rf doctor --source redis://127.0.0.1:6379
  RF_PASSWORD=secret rf doctor --source redis://admin@redis-1:6379 --fix
  rf doctor --source redis://127.0.0.1:6379 --reconnect-window 5m --json | jq '.checks[] | select(.status != "ok")'`,
    run: lazy(() => import('./doctor.js')),
  });
}

function printConfig(cmd: Command, json: boolean): Promise<number> {
  const config = effectiveConfig(cmd);
  if (json) out.json(config);
  else
    for (const [k, v] of Object.entries(config))
      out.line(`${k.padEnd(16)} ${String(v.value).padEnd(40)} (${v.source})`);
  return Promise.resolve(0);
}
