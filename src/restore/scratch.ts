import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { errnoCode, isRfError, RfError } from '../errors.js';
import type { Logger } from '../logger.js';
import { describeEndpoint, type RedisEndpoint } from '../redis-url.js';
import { handshake } from '../replication/handshake.js';
import { receiveRdb } from '../replication/rdb-transfer.js';
import { SocketReader } from '../replication/reader.js';
import { openSocket, RedisClient, type RedisClientOptions } from '../resp/client.js';
import { loadTarget } from './write-target.js';

export interface ScratchOptions {
  /** The redis-server binary: a path, or a name looked up on PATH. */
  redisServer?: string;
  /** How many databases the scratch server has: at least as many as the source used. */
  databases?: number;
  /** How long the server may take to answer its first PING. */
  readyTimeoutMs?: number;
  log: Logger;
}

/** The oldest redis-server a scratch may be: PEXPIRETIME and FUNCTION are 7.0 commands. */
const MIN_MAJOR = 7;
const DEFAULT_DATABASES = 256;
const BIND_ATTEMPTS = 5;
const SNAPSHOT = 'dump.rdb';

/** Every scratch server still running: none outlives rf, whatever ends it. */
const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

/**
 * A private redis-server that rf starts itself, on loopback, in its own temp dir (0700), with a
 * random password and no persistence: a place to rebuild a dataset as it was at T with Redis's
 * own code, then read it back with ordinary commands. It is loaded the way `--target` loads an
 * instance (rf serves it the base and the writes over the replication protocol), and stopped
 * and removed when rf is done with it.
 */
export class ScratchServer {
  private exited: Promise<void>;
  private stopped = false;

  private constructor(
    private readonly child: ChildProcess,
    readonly endpoint: RedisEndpoint,
    readonly dir: string,
    readonly version: string,
    readonly databases: number,
    private readonly log: Logger,
  ) {
    this.exited = new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve();
      else child.once('exit', () => resolve());
    });
  }

  static async start(options: ScratchOptions): Promise<ScratchServer> {
    const binary = options.redisServer ?? 'redis-server';
    const version = serverVersion(binary);
    const databases = options.databases ?? DEFAULT_DATABASES;
    const dir = await mkdtemp(path.join(os.tmpdir(), 'rf-scratch-'));
    const password = randomBytes(24).toString('hex');
    try {
      for (let attempt = 1; ; attempt++) {
        const port = await freeLoopbackPort();
        const child = launch(binary, dir, port, password, databases);
        const endpoint: RedisEndpoint = { host: '127.0.0.1', port, db: 0, password, tls: false };
        const outcome = await waitReady(child, endpoint, dir, options.readyTimeoutMs ?? 10_000);
        if (outcome === 'ready') {
          options.log.debug({ port, dir, version }, 'scratch redis-server ready');
          return new ScratchServer(child, endpoint, dir, version, databases, options.log);
        }
        // Another process bound the port between the probe and redis-server: take another.
        if (attempt === BIND_ATTEMPTS) {
          throw new RfError(
            'RF_REDIS_SERVER',
            `the scratch redis-server could not bind a loopback port in ${BIND_ATTEMPTS} attempts`,
            { details: { redisServer: binary }, hint: 'free some local ports and try again' },
          );
        }
      }
    } catch (err) {
      await rm(dir, { recursive: true, force: true });
      throw err;
    }
  }

  /** A client of the scratch server, logged in. */
  connect(options: RedisClientOptions = {}): Promise<RedisClient> {
    return RedisClient.connect(this.endpoint, options);
  }

  /**
   * Loads a base (an RDB) and the commands after it, the way `--target` does; `commands` may
   * end with commands of rf's own, which run as the master's writes do.
   */
  async load(
    base: { bytes: number; chunks: AsyncIterable<Buffer> },
    commands: AsyncIterable<Buffer>,
    idleTimeoutMs: number,
    beforeDetach?: (client: RedisClient) => Promise<void>,
  ): Promise<void> {
    try {
      await loadTarget(
        {
          endpoint: this.endpoint,
          serveHost: '127.0.0.1',
          idleTimeoutMs,
          log: this.log,
          ...(beforeDetach === undefined ? {} : { beforeDetach }),
        },
        base,
        commands,
      );
    } catch (err) {
      if (!isRfError(err, 'RF_TARGET') && !isRfError(err, 'RF_TIMEOUT')) throw err;
      const log = await readFile(path.join(this.dir, 'redis.log'), 'utf8').catch(() => '');
      throw new RfError(
        'RF_REDIS_SERVER',
        `the scratch redis-server ${this.version} could not load the state at T: ${err.message}`,
        {
          details: { version: this.version, log: log.trimEnd().split('\n').slice(-5).join('\n') },
          hint: 'a base from a newer Redis needs a redis-server at least as new: give one with --redis-server PATH',
          cause: err,
        },
      );
    }
  }

  /**
   * Saves the dataset (SAVE: the scratch serves nobody else, so it may block) and returns the
   * RDB file's path, inside the scratch's own directory.
   */
  async snapshot(client: RedisClient, timeoutMs: number): Promise<string> {
    await client.command(['SAVE'], { timeoutMs });
    return path.join(this.dir, SNAPSHOT);
  }

  /**
   * Like snapshot(), for a file only read while the scratch lives, once it is detached: the
   * RDB comes over the replication link (REPLCONF rdb-only 1, diskless: the scratch forks and
   * writes it to the socket) rather than by SAVE, which fsyncs the file before it answers
   * (rdb.c rdbSave); on a busy disk that wait took longer than writing the file.
   */
  async streamSnapshot(timeoutMs: number): Promise<string> {
    const file = path.join(this.dir, SNAPSHOT);
    const socket = await openSocket(this.endpoint, { timeoutMs });
    try {
      const reader = new SocketReader(socket, describeEndpoint(this.endpoint));
      const reply = await handshake(socket, reader, {
        endpoint: this.endpoint,
        listeningPort: 0,
        resume: null,
        rdbOnly: true,
        timeoutMs,
      });
      if (reply.kind !== 'full') {
        throw new RfError('RF_PROTOCOL', 'the scratch redis-server answered PSYNC with +CONTINUE', {
          details: { reply },
        });
      }
      await receiveRdb(reader, file, timeoutMs, undefined, false);
    } finally {
      socket.destroy();
    }
    return file;
  }

  /** Stops the server and removes its directory; safe to call twice. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5_000);
    await this.exited;
    clearTimeout(timer);
    await rm(this.dir, { recursive: true, force: true });
  }
}

function missingServer(binary: string, why: string, cause?: unknown): RfError {
  return new RfError('RF_REDIS_SERVER', `cannot run ${binary}: ${why}`, {
    details: { redisServer: binary },
    hint: 'install redis-server 7 (apt-get install redis-server) or name one with --redis-server PATH',
    ...(cause === undefined ? {} : { cause }),
  });
}

/** `redis-server --version`, refusing a binary that is missing or older than 7.0. */
function serverVersion(binary: string): string {
  const result = spawnSync(binary, ['--version'], { encoding: 'utf8', timeout: 10_000 });
  if (result.error !== undefined) {
    const errno = errnoCode(result.error);
    const why = errno === 'ENOENT' ? 'no such file (or not on PATH)' : result.error.message;
    throw missingServer(binary, why, result.error);
  }
  const version = /v=(\d+)\.(\d+)\.(\d+)/.exec(result.stdout);
  if (result.status !== 0 || version === null) {
    throw missingServer(binary, 'it does not answer --version as redis-server does');
  }
  if (Number(version[1]) < MIN_MAJOR) {
    throw missingServer(
      binary,
      `it is version ${version.slice(1).join('.')}; rf needs 7.0 or newer`,
    );
  }
  return version.slice(1).join('.');
}

function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.on('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

function launch(
  binary: string,
  dir: string,
  port: number,
  password: string,
  databases: number,
): ChildProcess {
  const args = [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--protected-mode',
    'yes',
    '--dir',
    dir,
    '--logfile',
    path.join(dir, 'redis.log'),
    '--save',
    '',
    '--appendonly',
    'no',
    '--databases',
    String(databases),
    // Load the snapshot straight from the socket (it starts empty): no copy on disk.
    '--repl-diskless-load',
    'on-empty-db',
    // streamSnapshot(): the RDB goes to rf over the socket at once.
    '--repl-diskless-sync',
    'yes',
    '--repl-diskless-sync-delay',
    '0',
    // rf reads the keys of the scratch's snapshots itself (rdb/entries.ts): no LZF.
    '--rdbcompression',
    'no',
    '--dbfilename',
    SNAPSHOT,
    '--maxmemory',
    '0',
    // DEBUG DIGEST records what a rolled base holds; Redis 7 refuses DEBUG unless enabled.
    '--enable-debug-command',
    'local',
  ];
  // The password goes in a config line on stdin, not argv, where `ps` would show it.
  const child = spawn(binary, ['-', ...args], { stdio: ['pipe', 'ignore', 'ignore'] });
  child.stdin?.end(`requirepass ${password}\n`);
  child.stdin?.on('error', () => undefined);
  live.add(child);
  child.once('exit', () => live.delete(child));
  child.once('error', () => live.delete(child));
  return child;
}

async function waitReady(
  child: ChildProcess,
  endpoint: RedisEndpoint,
  dir: string,
  timeoutMs: number,
): Promise<'ready' | 'port-taken'> {
  let spawnError: Error | null = null;
  child.once('error', (err) => {
    spawnError = err;
  });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (spawnError !== null) throw missingServer('redis-server', String(spawnError), spawnError);
    if (child.exitCode !== null || child.signalCode !== null) {
      const log = await readFile(path.join(dir, 'redis.log'), 'utf8').catch(() => '');
      if (log.includes('Address already in use')) return 'port-taken';
      throw new RfError('RF_REDIS_SERVER', 'the scratch redis-server exited as it started', {
        details: { log: log.trimEnd().split('\n').slice(-5).join('\n') },
        hint: 'check that this redis-server starts on this host (redis-server --version)',
      });
    }
    // The random password proves the server that answers is this one.
    const client = await RedisClient.connect(endpoint, { timeoutMs: 1_000 }).catch(
      (err: unknown) => (isRfError(err, 'RF_AUTH') ? 'other' : null),
    );
    if (client === 'other') {
      child.kill('SIGKILL');
      return 'port-taken';
    }
    if (client !== null) {
      client.destroy();
      return 'ready';
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new RfError(
        'RF_REDIS_SERVER',
        `the scratch redis-server did not answer in ${timeoutMs} ms`,
        {
          details: { port: endpoint.port },
          hint: 'the host may be overloaded; try again',
        },
      );
    }
    await sleep(20);
  }
}
