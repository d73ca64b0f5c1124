import type { Socket } from 'node:net';
import { RfError } from '../errors.js';
import type { RedisEndpoint } from '../redis-url.js';
import { encodeCommand } from '../resp/encode.js';
import type { SocketReader } from './reader.js';

export type PsyncReply =
  | { kind: 'full'; replid: string; offset: number }
  | { kind: 'continue'; replid: string | null };

export interface HandshakeOptions {
  endpoint: RedisEndpoint;
  /** Shown by the master in INFO replication as this replica's port. */
  listeningPort: number;
  /** Where to resume: the first offset not yet durable. Null asks for a full sync. */
  resume: { replid: string; offset: number } | null;
  /** Ask for a snapshot only (REPLCONF rdb-only 1, Redis 7.0+): used for fresh bases. */
  rdbOnly?: boolean;
  /** Sent as REPLCONF version (Valkey masters only: see VALKEY_REPLICA_VERSION). */
  replicaVersion?: string;
  timeoutMs: number;
}

/**
 * What rf tells a Valkey master it is. Valkey keys behaviour on the replica's version: 8.0
 * force-propagates CLUSTER SETSLOT to, and blocks on the ACK of, replicas newer than 7.2.255
 * (valkey src/cluster_legacy.c clusterCommandSetSlot), and newer releases pick the snapshot's
 * RDB format from it, falling back to an older one for a replica that says nothing. 7.2.4, the
 * Redis release Valkey forked from, asks for RDB 11, which rf reads, and for no SETSLOT in the
 * stream, which a restore into a standalone server could not apply. Redis has no such option
 * (it answers -ERR Unrecognized REPLCONF option), so it is only sent to Valkey.
 */
export const VALKEY_REPLICA_VERSION = '7.2.4';

/** Replies that mean "not now": the master is loading or has lost its own master. */
const RETRY_LATER = /^-(LOADING|NOMASTERLINK|MASTERDOWN|BUSY)\b/;

export class MasterRetryLater extends RfError {
  constructor(reply: string, peer: string) {
    super('RF_MASTER_ERROR', `${peer} cannot serve a replica yet: ${reply.slice(1)}`, {
      details: { peer, reply },
      hint: 'rf retries with backoff; nothing to do unless it persists',
    });
  }
}

/**
 * The replica side of the handshake, in the order src/replication.c (syncWithMaster) uses:
 * PING, AUTH, REPLCONF listening-port, REPLCONF capa, PSYNC. Only `eof` and `psync2` are
 * advertised: rf implements both and nothing else (Redis 8's rdb-channel-repl would change
 * the reply to +RDBCHANNELSYNC, Valkey 8's dual-channel would move the snapshot to a second
 * connection; both are opt-in, so a replica that does not ask gets a normal sync).
 */
export async function handshake(
  socket: Socket,
  reader: SocketReader,
  options: HandshakeOptions,
): Promise<PsyncReply> {
  const peer = `${options.endpoint.host}:${options.endpoint.port}`;
  const ask = async (args: string[], what: string): Promise<string> => {
    socket.write(encodeCommand(args));
    return reader.readLine(options.timeoutMs, `the reply to ${what}`);
  };
  const fail = (what: string, reply: string) =>
    reply.startsWith('-NOPERM')
      ? noPermission(peer, what, reply)
      : new RfError('RF_MASTER_ERROR', `${peer} refused ${what}: ${reply.slice(1)}`, {
          details: { peer, command: what, reply },
          hint: 'check the source URL and the master configuration; `rf doctor` explains each setting',
        });

  const pong = await ask(['PING'], 'PING');
  // A master with requirepass answers PING with -NOAUTH; AUTH follows anyway.
  if (pong.startsWith('-') && !/^-(NOAUTH|NOPERM)/.test(pong)) {
    if (RETRY_LATER.test(pong)) throw new MasterRetryLater(pong, peer);
    throw fail('PING', pong);
  }

  const { username, password } = options.endpoint;
  if (password !== undefined) {
    const reply = await ask(
      username === undefined ? ['AUTH', password] : ['AUTH', username, password],
      'AUTH',
    );
    if (reply.startsWith('-')) {
      throw new RfError(
        'RF_AUTH',
        `${peer} refused the credentials${username ? ` of user ${username}` : ''}: ${reply.slice(1)}`,
        {
          details: { peer, user: username ?? 'default' },
          hint: 'check the password in the URL, RF_PASSWORD or --password-file, and the ACL user (`rf doctor` prints the ACL rf needs)',
        },
      );
    }
  } else if (pong.startsWith('-')) {
    throw new RfError('RF_AUTH', `${peer} requires a password: ${pong.slice(1)}`, {
      details: { peer },
      hint: 'give one in the URL (redis://user:password@host:port), RF_PASSWORD or --password-file',
    });
  }

  // Old masters may not know these; src/replication.c carries on after an error here too.
  await ask(
    ['REPLCONF', 'listening-port', String(options.listeningPort)],
    'REPLCONF listening-port',
  );
  await ask(['REPLCONF', 'capa', 'eof', 'capa', 'psync2'], 'REPLCONF capa');
  // Like listening-port, an error here is not fatal: the master then treats rf as it would
  // any replica that did not say.
  if (options.replicaVersion !== undefined) {
    await ask(['REPLCONF', 'version', options.replicaVersion], 'REPLCONF version');
  }

  if (options.rdbOnly) {
    const reply = await ask(['REPLCONF', 'rdb-only', '1'], 'REPLCONF rdb-only');
    if (reply.startsWith('-')) throw fail('REPLCONF rdb-only (needs Redis 7.0 or later)', reply);
  }

  const resume = options.resume;
  const reply = await ask(
    resume === null ? ['PSYNC', '?', '-1'] : ['PSYNC', resume.replid, String(resume.offset)],
    'PSYNC',
  );
  return parsePsyncReply(reply, peer);
}

export function parsePsyncReply(reply: string, peer: string): PsyncReply {
  const words = reply.split(' ');
  if (words[0] === '+FULLRESYNC' && words.length === 3) {
    const offset = Number(words[2]);
    if (/^[0-9a-f]{40}$/.test(words[1] ?? '') && Number.isSafeInteger(offset) && offset >= 0) {
      return { kind: 'full', replid: words[1]!, offset };
    }
  }
  if (words[0] === '+CONTINUE') {
    const replid = words[1];
    if (replid === undefined || replid === '') return { kind: 'continue', replid: null };
    if (/^[0-9a-f]{40}$/.test(replid)) return { kind: 'continue', replid };
  }
  if (RETRY_LATER.test(reply)) throw new MasterRetryLater(reply, peer);
  if (reply.startsWith('-NOPERM')) throw noPermission(peer, 'PSYNC', reply);
  if (reply.startsWith('-')) {
    throw new RfError('RF_MASTER_ERROR', `${peer} refused PSYNC: ${reply.slice(1)}`, {
      details: { peer, reply },
      hint: 'check that the source is a Redis 7 master that allows replicas',
    });
  }
  throw new RfError(
    'RF_PROTOCOL',
    `unexpected reply to PSYNC from ${peer}: ${JSON.stringify(reply.slice(0, 80))}`,
    {
      details: { peer, reply: reply.slice(0, 80) },
    },
  );
}

/** The ACL line for a user that can do what rf does and no more (rf doctor prints the same). */
// +client|setname: every connection but the replication one names itself (rf-watch,
// rf-aof-rewrite, rf-doctor) so that CLIENT LIST shows what each is. +command: rf listen
// records the master's key specs (COMMAND) so that rf log finds the keys of any command.
export const RF_ACL_RULES =
  '-@all +psync +replconf +ping +info +role +config|get +bgrewriteaof +client|setname +command +cluster|shards +cluster|nodes';

export function noPermission(peer: string, command: string, reply: string): RfError {
  return new RfError(
    'RF_AUTH',
    `${peer} does not let this user run ${command}: ${reply.slice(1)}`,
    {
      details: { peer, command, reply },
      hint: `grant the rf user what it needs: ACL SETUSER <user> on >PASSWORD resetkeys resetchannels ${RF_ACL_RULES} (\`rf doctor\` prints it)`,
    },
  );
}
