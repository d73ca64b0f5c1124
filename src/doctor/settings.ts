import { setTimeout as sleep } from 'node:timers/promises';
import { RF_ACL_RULES } from '../replication/handshake.js';
import { parseServerInfo, redisMajor } from '../replication/server-info.js';
import type { RedisClient } from '../resp/client.js';
import { RedisReplyError } from '../resp/client.js';
import type { ServerInfo } from '../store/types.js';

/**
 * What `rf doctor` checks on a source Redis: the settings rf relies on, each with what it is, what
 * rf wants, why, and the CONFIG SET that fixes it where one can.
 */
export type CheckStatus = 'ok' | 'warn' | 'fail' | 'unknown';

export interface Check {
  name: string;
  status: CheckStatus;
  current: string | null;
  recommended: string;
  why: string;
  /** The command `--fix` sends, when the setting can be fixed with one. */
  fix: string[] | null;
  /** Set by applyFixes. */
  fixed?: boolean;
  fixError?: string;
}

export interface DiagnoseOptions {
  /** The ACL user rf should log in as. */
  rfUser: string;
  /** How long a disconnect `rf listen` should be able to resume from (repl-backlog-size). */
  reconnectWindowMs: number;
  /** How long the write rate is measured for. */
  sampleMs: number;
}

export interface Diagnosis {
  checks: Check[];
  /** Bytes per second of writes measured while diagnosing. */
  writeRate: number;
  /** The line that creates the user rf needs. */
  aclLine: string;
  configFile: string | null;
  version: string | null;
  server: ServerInfo;
}

const MiB = 1024 * 1024;
/** redis.conf defaults for `client-output-buffer-limit replica`. */
const REPLICA_HARD = 256 * MiB;
const REPLICA_SOFT = 64 * MiB;

/**
 * The commands rf sends to a source, with harmless arguments for ACL DRYRUN: the replication
 * handshake and stream (PSYNC, REPLCONF, PING), preflight and checks (INFO, ROLE, CONFIG GET),
 * the AOF rewrite cycle (BGREWRITEAOF) and a cluster's topology (CLUSTER SHARDS or NODES).
 */
const NEEDED: string[][] = [
  ['PSYNC', '?', '-1'],
  ['REPLCONF', 'ACK', '0'],
  ['PING'],
  ['INFO', 'persistence'],
  ['ROLE'],
  ['CONFIG', 'GET', 'appendonly'],
  ['BGREWRITEAOF'],
  ['CLIENT', 'SETNAME', 'rf'],
  ['COMMAND'],
  // rf listen --cluster reads the topology from any node (CLUSTER NODES before 7.0).
  ['CLUSTER', 'SHARDS'],
  ['CLUSTER', 'NODES'],
];

/** How ACL rules name a command: `info`, or `config|get` for a container's subcommand. */
function aclName(cmd: string[]): string {
  const name = cmd[0]!.toLowerCase();
  return name === 'config' || name === 'client' || name === 'cluster'
    ? `${name}|${cmd[1]!.toLowerCase()}`
    : name;
}

export function aclLine(user: string): string {
  return `ACL SETUSER ${user} on >CHOOSE-A-PASSWORD resetkeys resetchannels ${RF_ACL_RULES}`;
}

export async function diagnose(client: RedisClient, options: DiagnoseOptions): Promise<Diagnosis> {
  const config = async (name: string): Promise<string | null> => {
    const reply = (await client.call('CONFIG', 'GET', name)) as unknown[];
    return reply.length >= 2 ? String(reply[1]) : null;
  };
  const server = await client.info('server');
  const about = parseServerInfo(server, Date.now());
  // Redis 6 has one appendonly.aof, no AOF timestamps and no ACL DRYRUN (all three came in 7.0).
  const redis6 = redisMajor(about) > 0 && redisMajor(about) < 7;
  const rate = await writeRate(client, options.sampleMs);
  const checks: Check[] = [];

  const appendonly = await config('appendonly');
  checks.push({
    name: 'appendonly',
    status: appendonly === 'yes' ? 'ok' : 'fail',
    current: appendonly,
    recommended: 'yes',
    why: 'rf ship and rf listen --aof-dir follow the append-only files: with appendonly no Redis writes none.',
    fix: ['CONFIG', 'SET', 'appendonly', 'yes'],
  });

  const percentage = await config('auto-aof-rewrite-percentage');
  checks.push({
    name: 'auto-aof-rewrite-percentage',
    status: percentage === '0' ? 'ok' : 'warn',
    current: percentage,
    recommended: '0',
    why: 'so that only rf rewrites the AOF, at --rewrite-at: each rewrite then happens after the old incr file is stored, and gives a planned restore starting point.',
    fix: ['CONFIG', 'SET', 'auto-aof-rewrite-percentage', '0'],
  });

  checks.push(await timestampCheck(config, redis6));
  checks.push(await layoutCheck(config, redis6));

  const backlog = Number(await config('repl-backlog-size'));
  const wantBacklog = Math.max(MiB, roundUpMiB(rate * (options.reconnectWindowMs / 1000)));
  checks.push({
    name: 'repl-backlog-size',
    status: backlog >= wantBacklog ? 'ok' : 'warn',
    current: String(backlog),
    recommended: `>= ${wantBacklog}`,
    why: `rf listen resumes a dropped connection with PSYNC only while the writes it missed are still in the backlog; at the ${formatRate(rate)} measured now, ${Math.round(options.reconnectWindowMs / 1000)} s of writes need ${wantBacklog} bytes (measure again at a busy hour).`,
    fix: ['CONFIG', 'SET', 'repl-backlog-size', String(wantBacklog)],
  });

  const limits = parseBufferLimits((await config('client-output-buffer-limit')) ?? '');
  const replica = limits.replica ?? limits.slave ?? null;
  const hardOk = replica !== null && (replica.hard === 0 || replica.hard >= REPLICA_HARD);
  const softOk = replica !== null && (replica.soft === 0 || replica.soft >= REPLICA_SOFT);
  checks.push({
    name: 'client-output-buffer-limit replica',
    status: hardOk && softOk ? 'ok' : 'warn',
    current: replica === null ? null : `${replica.hard} ${replica.soft} ${replica.seconds}`,
    recommended: `hard >= ${REPLICA_HARD} (or 0), soft >= ${REPLICA_SOFT} (or 0)`,
    why: 'while rf receives a snapshot the master buffers the writes for it; a buffer over the limit drops rf and it must start a new full sync (a gap).',
    fix: [
      'CONFIG',
      'SET',
      'client-output-buffer-limit',
      `replica ${Math.max(REPLICA_HARD, replica?.hard ?? 0)} ${Math.max(REPLICA_SOFT, replica?.soft ?? 0)} ${replica?.seconds ?? 60}`,
    ],
  });

  checks.push(await aclCheck(client, options.rfUser, redis6));

  return {
    checks,
    writeRate: rate,
    aclLine: aclLine(options.rfUser),
    configFile:
      server.config_file === undefined || server.config_file === '' ? null : server.config_file,
    version: server.redis_version ?? null,
    server: about,
  };
}

type ConfigGet = (name: string) => Promise<string | null>;

async function timestampCheck(config: ConfigGet, redis6: boolean): Promise<Check> {
  const base = { name: 'aof-timestamp-enabled', recommended: 'yes (recommended)' };
  if (redis6) {
    return {
      ...base,
      status: 'ok',
      current: null,
      recommended: 'not in Redis 6 (it came with 7.0)',
      why: 'so the AOF record is dated by when rf read each chunk (chunk precision, rf restore --from aof says so); the stream stays precise to the millisecond.',
      fix: null,
    };
  }
  const timestamps = await config('aof-timestamp-enabled');
  return {
    ...base,
    status: timestamps === 'yes' ? 'ok' : 'warn',
    current: timestamps,
    why: 'Redis then writes #TS:<unix seconds> before the first command of each second, which dates the AOF chunks by the server’s own clock.',
    fix: ['CONFIG', 'SET', 'aof-timestamp-enabled', 'yes'],
  };
}

/** Where the append-only files are: what --aof-dir follows and what rf restore --out writes. */
async function layoutCheck(config: ConfigGet, redis6: boolean): Promise<Check> {
  const file = (await config('appendfilename')) ?? 'appendonly.aof';
  const current = redis6
    ? `${file} (one file, Redis 6)`
    : `${(await config('appenddirname')) ?? 'appendonlydir'}/ with ${file}.manifest (multi-part, Redis 7)`;
  return {
    name: 'aof layout',
    status: 'ok',
    current,
    recommended: 'either: rf follows both',
    why: `rf listen --aof-dir and rf ship follow ${redis6 ? 'the single file' : 'the manifest'}, and rf restore --out writes the same layout for this server (--layout redis6|redis7 overrides it).`,
    fix: null,
  };
}

async function aclCheck(client: RedisClient, user: string, redis6: boolean): Promise<Check> {
  const base = {
    name: `ACL user ${user}`,
    recommended: `only ${NEEDED.map(aclName).join(', ')}`,
    why: `rf should log in as a user that can do what rf does and no more: create it with the ACL SETUSER line below and put it in the --source URL (redis://${user}:PASSWORD@host:port).`,
    fix: null,
  };
  let info: unknown;
  try {
    info = await client.call('ACL', 'GETUSER', user);
  } catch (err) {
    if (!(err instanceof RedisReplyError)) throw err;
    return {
      ...base,
      status: 'unknown',
      current: `cannot read ACLs here (${err.message})`,
      why: `${base.why} Run rf doctor as an admin user to check it.`,
    };
  }
  if (info === null) return { ...base, status: 'warn', current: 'no such user' };
  const fields = new Map<string, unknown>();
  const list = info as unknown[];
  for (let i = 0; i + 1 < list.length; i += 2) fields.set(String(list[i]), list[i + 1]);
  const flags = ((fields.get('flags') as unknown[] | undefined) ?? []).map(String);
  const commands = String(fields.get('commands') ?? '');
  if (!flags.includes('on')) return { ...base, status: 'fail', current: 'the user is off' };
  if (redis6) {
    // ACL DRYRUN, which asks the server itself, came with Redis 7.0.
    return {
      ...base,
      status: 'unknown',
      current: String(fields.get('commands') ?? ''),
      why: `${base.why} Redis 6 cannot test a user's rights (ACL DRYRUN came with 7.0): compare its rules with the line below.`,
    };
  }
  const missing: string[] = [];
  for (const cmd of NEEDED) {
    // ACL DRYRUN answers OK, or a bulk string saying why the user may not (acl.c aclCommand).
    let allowed: boolean;
    try {
      allowed = String(await client.call('ACL', 'DRYRUN', user, ...cmd)) === 'OK';
    } catch (err) {
      if (!(err instanceof RedisReplyError)) throw err;
      allowed = false;
    }
    if (!allowed) missing.push(aclName(cmd));
  }
  if (missing.length > 0)
    return { ...base, status: 'fail', current: `${commands} (missing ${missing.join(', ')})` };
  if (/\+@all\b/.test(commands))
    return { ...base, status: 'warn', current: `${commands} (more than rf needs)` };
  return { ...base, status: 'ok', current: commands };
}

/** Bytes of writes per second: the replication offset, or the AOF, over `ms`. */
async function writeRate(client: RedisClient, ms: number): Promise<number> {
  const sample = async () => {
    const [repl, persistence] = await Promise.all([
      client.info('replication'),
      client.info('persistence'),
    ]);
    return {
      offset: Number(repl.master_repl_offset ?? 0),
      aof: Number(persistence.aof_current_size ?? 0),
      at: Date.now(),
    };
  };
  const a = await sample();
  await sleep(ms);
  const b = await sample();
  const seconds = Math.max((b.at - a.at) / 1000, 0.001);
  // The offset only moves once a replica has attached (a backlog exists); the AOF only with appendonly.
  return Math.max(b.offset - a.offset, b.aof - a.aof, 0) / seconds;
}

interface BufferLimit {
  hard: number;
  soft: number;
  seconds: number;
}

/** `normal 0 0 0 slave 268435456 67108864 60 pubsub …` by class. */
export function parseBufferLimits(text: string): Record<string, BufferLimit> {
  const parts = text.trim().split(/\s+/);
  const out: Record<string, BufferLimit> = {};
  for (let i = 0; i + 3 < parts.length; i += 4) {
    out[parts[i]!] = {
      hard: Number(parts[i + 1]),
      soft: Number(parts[i + 2]),
      seconds: Number(parts[i + 3]),
    };
  }
  return out;
}

function roundUpMiB(n: number): number {
  return Math.ceil(n / MiB) * MiB;
}

function formatRate(bytesPerSecond: number): string {
  if (bytesPerSecond < 1024) return `${Math.round(bytesPerSecond)} B/s`;
  if (bytesPerSecond < MiB) return `${(bytesPerSecond / 1024).toFixed(1)} KiB/s`;
  return `${(bytesPerSecond / MiB).toFixed(1)} MiB/s`;
}

export interface FixOutcome {
  applied: Check[];
  /** CONFIG REWRITE: done, not possible (no config file), or failed. */
  configRewrite: { status: 'done' | 'no-config-file' | 'failed' | 'nothing-to-do'; error?: string };
}

/** Sends the CONFIG SET of every check that needs one, then CONFIG REWRITE where there is a config file. */
export async function applyFixes(client: RedisClient, diagnosis: Diagnosis): Promise<FixOutcome> {
  const applied: Check[] = [];
  for (const check of diagnosis.checks) {
    if (check.status === 'ok' || check.fix === null) continue;
    try {
      await client.call(...check.fix);
      check.fixed = true;
      check.status = 'ok';
    } catch (err) {
      if (!(err instanceof RedisReplyError)) throw err;
      check.fixed = false;
      check.fixError = err.message;
    }
    applied.push(check);
  }
  if (!applied.some((c) => c.fixed)) return { applied, configRewrite: { status: 'nothing-to-do' } };
  if (diagnosis.configFile === null)
    return { applied, configRewrite: { status: 'no-config-file' } };
  try {
    await client.call('CONFIG', 'REWRITE');
    return { applied, configRewrite: { status: 'done' } };
  } catch (err) {
    if (!(err instanceof RedisReplyError)) throw err;
    return { applied, configRewrite: { status: 'failed', error: err.message } };
  }
}
