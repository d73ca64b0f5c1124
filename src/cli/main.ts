#!/usr/bin/env node
import { Command, CommanderError, Option } from 'commander';
import { applyConfig, effectiveConfig } from './config-file.js';
import { registerDoctor } from './doctor.js';
import { out, reportError } from './output.js';
import { registerShip } from './ship.js';

// `rf info | head` closes stdout early: that is the reader's choice, not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw err;
});

const program = new Command();

program
  .name('rf')
  .description(
    'Point-in-time recovery for Redis: archive every write a master propagates, restore to any millisecond.',
  )
  .version('0.1.0')
  .showHelpAfterError('(run with -h for usage and examples)')
  .configureOutput({ outputError: (str, write) => write(str) })
  .exitOverride();

const json = () => new Option('--json', 'machine-readable output');
const store = () => new Option('--store <dir>', 'the archive directory').default('./rf-data');

program
  .command('listen')
  .description('connect to a master as a replica and archive its snapshot and every write')
  .addOption(
    new Option(
      '--source <redis-url>',
      'the master, redis://[user[:password]@]host:port (also REDIS_URL)',
    ).default('redis://127.0.0.1:6379'),
  )
  .addOption(store())
  .option('--name <source>', 'name of this source in the store', 'default')
  .option('--password-file <file>', 'read the password from the first line of this file')
  .option('--tls-ca <file>', 'CA certificate for rediss://')
  .option('--tls-cert <file>', 'client certificate for rediss://')
  .option('--tls-key <file>', 'client key for rediss://')
  .option(
    '--aof-dir <dir>',
    "also follow the master's append-only files in this directory (same host)",
  )
  .option('--chunk-size <bytes>', 'cut the AOF into chunks of about this size', '1m')
  .option('--chunk-pause <ms>', 'pause between AOF chunks, to spare the live host', '0')
  .option(
    '--rewrite-at <HH:MM|off>',
    'run the BGREWRITEAOF cycle daily at this local time',
    '00:00',
  )
  .option('--rewrite-timeout <duration>', 'longest a rewrite cycle may take', '30m')
  .option('--tz <zone>', 'IANA time zone of --rewrite-at (default: this machine)')
  .option('--ingest <host:port>', 'accept AOF chunks from rf ship on this address')
  .option(
    '--ingest-token-file <file>',
    'the bearer token rf ship must present (or RF_INGEST_TOKEN)',
  )
  .option('--ingest-tls-cert <file>', 'serve --ingest over TLS with this certificate')
  .option('--ingest-tls-key <file>', 'and this key')
  .option(
    '--retain <duration>',
    'keep what restores within this window need (7d, 36h, forever)',
    'forever',
  )
  .option('--metrics <host:port>', 'serve Prometheus metrics on http://host:port/metrics')
  .option(
    '--base-every <duration>',
    'take a fresh base this often without pausing capture (24h, 6h, off)',
    '24h',
  )
  .option('--segment-size <bytes>', 'seal a segment once it holds this many bytes', '1m')
  .option('--flush-interval <ms>', 'commit buffered writes at least this often', '100')
  .option(
    '--repl-timeout <ms>',
    'give up on a silent master after this long (like repl-timeout)',
    '60000',
  )
  .option('--connect-timeout <ms>', 'give up connecting after this long', '10000')
  .option('--log-level <level>', 'trace, debug, info, warn, error', 'info')
  .addOption(json())
  .addHelpText(
    'after',
    `
Examples:
  rf listen --source redis://127.0.0.1:6380 --store /var/lib/rf
  RF_PASSWORD=secret rf listen --source redis://rf@redis-1:6379 --name cache`,
  )
  .option('--print-config', 'print the effective configuration, secrets redacted, and exit')
  .action(async (opts, cmd: Command) => {
    if (opts.printConfig) {
      const config = effectiveConfig(cmd);
      if (opts.json) out.json(config);
      else
        for (const [k, v] of Object.entries(config))
          out.line(`${k.padEnd(16)} ${String(v.value).padEnd(40)} (${v.source})`);
      return;
    }
    const { run } = await import('./listen.js');
    process.exitCode = await run(opts);
  });

program
  .command('info')
  .description('show what the archive holds and what can be restored')
  .addOption(store())
  .option('--name <source>', 'only this source')
  .option('--tz <zone>', 'IANA time zone for local times (default: this machine)')
  .addOption(json())
  .addHelpText(
    'after',
    `
Examples:
  rf info --store /var/lib/rf
  rf info --store /var/lib/rf --json | jq '.sources[0].restorable'`,
  )
  .action(async (opts) => {
    const { run } = await import('./info.js');
    process.exitCode = await run(opts);
  });

program
  .command('restore')
  .description(
    'build a Redis dataset as it was at a moment: cut at a transaction boundary, never splitting one',
  )
  .addOption(store())
  .requiredOption(
    '--until <time>',
    'the moment: ISO 8601 (with Z or an offset, or read in --tz), @<unix>, -15m, latest',
  )
  .option(
    '--out <dir>',
    'write a directory that `redis-server --dir DIR --appendonly yes` boots from (the layout of the archived version)',
  )
  .addOption(
    new Option(
      '--layout <layout>',
      'for --out: redis7 (appendonlydir) or redis6 (one appendonly.aof); default: from the archive',
    ).choices(['redis6', 'redis7']),
  )
  .option('--target <redis-url>', 'load a running, empty Redis instead')
  .option('--name <source>', 'the source to restore', 'default')
  .addOption(
    new Option('--from <what>', 'where the writes come from')
      .choices(['stream', 'aof', 'auto'])
      .default('auto'),
  )
  .option('--tz <zone>', 'IANA time zone for times without an offset (default: this machine)')
  .option('--dry-run', 'print the plan and write nothing')
  .option('--password-file <file>', "the target's password, from the first line of this file")
  .option('--tls-ca <file>', 'CA certificate for a rediss:// target')
  .option('--tls-cert <file>', 'client certificate for a rediss:// target')
  .option('--tls-key <file>', 'client key for a rediss:// target')
  .option(
    '--serve-host <addr>',
    'address the target connects back to (default: the one rf reaches it from)',
  )
  .option('--target-timeout <ms>', 'longest wait with no progress from the target', '120000')
  .addOption(json())
  .addHelpText(
    'after',
    `
Examples:
  rf restore --store /var/lib/rf --until "2026-11-24T15:12:01+01:00" --out /srv/restored
  rf restore --store /var/lib/rf --until "2026-11-24 15:12:01" --tz Europe/Paris --dry-run
  rf restore --store /var/lib/rf --until -15m --target redis://10.0.0.7:6379
  rf restore --store /var/lib/rf --until latest --out /srv/for-6.2 --layout redis6`,
  )
  .action(async (opts) => {
    const { run } = await import('./restore.js');
    process.exitCode = await run(opts);
  });

program
  .command('verify')
  .description(
    're-read the whole archive: checksums, contiguous offsets, bases, commands, AOF chunks, and the stream against the AOF',
  )
  .addOption(store())
  .option('--name <source>', 'only this source')
  .addOption(json())
  .addHelpText(
    'after',
    `
Exit codes: 0 the archive is whole, 1 problems found (each with its location and time range),
4 the archive cannot be read at all.

Examples:
  rf verify --store /var/lib/rf
  rf verify --store /var/lib/rf --name cache --json | jq '.sources[].problems'`,
  )
  .action(async (opts) => {
    const { run } = await import('./verify.js');
    process.exitCode = await run(opts);
  });

program
  .command('log')
  .description('print the writes of a time window, one per line: time, db, offset, command')
  .addOption(store())
  .option('--name <source>', 'the source to read', 'default')
  .option('--since <time>', 'from this moment (default: the first write archived)')
  .option('--until <time>', 'up to this moment, inclusive (default: the last write archived)')
  .option(
    '--key <glob>',
    'only writes to a key matching this Redis glob (* ? [..] \\): the key arguments of known commands, every argument of others; FLUSHDB, FLUSHALL and SWAPDB always match',
  )
  .option('--db <n>', 'only writes to this database')
  .option('--command <name>', 'only this command (case-insensitive), e.g. DEL')
  .option('--tz <zone>', 'IANA time zone for times without an offset, and for the times shown')
  .addOption(json())
  .addHelpText(
    'after',
    `
Examples:
  rf log --store /var/lib/rf --since -15m --key 'user:42:*'
  rf log --store /var/lib/rf --since "2026-11-24 15:00" --until "2026-11-24 15:05" --tz Europe/Paris
  rf log --store /var/lib/rf --since -1h --command DEL --db 0 --json | jq -c '.args'`,
  )
  .action(async (opts) => {
    const { run } = await import('./log.js');
    process.exitCode = await run(opts);
  });

registerShip(program);
registerDoctor(program);

// Every command reads the same config file and RF_* variables: flags > environment > file > defaults.
for (const cmd of program.commands) {
  cmd.addOption(new Option('--config <file>', 'YAML file of option values (env RF_CONFIG)'));
}
program.hook('preAction', (_program, actionCommand) => applyConfig(program, actionCommand));

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    // Help and version exit 0; everything else commander rejects is bad usage.
    process.exitCode = err.exitCode === 0 ? 0 : 2;
  } else {
    process.exitCode = reportError(err, process.argv.includes('--json'));
  }
}
