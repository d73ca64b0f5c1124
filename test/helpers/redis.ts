import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { isRfError } from '../../src/errors.js';
import { RedisClient, type RedisClientOptions } from '../../src/resp/client.js';
import { compareVersions, hasFeature, redisBin, serverBuild } from './redis-bin.js';
import { makeTempDir, removeTempDir } from './tmp.js';

export interface StartRedisOptions {
  /** redis-server arguments after the defaults, so they override them: ['--appendonly', 'yes']. */
  args?: string[];
  /** Run in this directory instead of a new temp dir; it is left in place on stop. */
  dir?: string;
  /** Refuse to start unless redis-server is at least this version, e.g. '7.0.0'. */
  minVersion?: string;
  /** How long to wait for the server to answer PING; 10 s unless given. */
  readyTimeoutMs?: number;
  /**
   * Start from this redis.conf (so CONFIG REWRITE has a file to write). Only --port, --bind,
   * --dir and --logfile are then given on the command line, which would override the file.
   */
  configFile?: string;
  /** Pick a port whose cluster bus port (port + 10000) is free too, for --cluster-enabled yes. */
  clusterBus?: boolean;
  /**
   * The log line that says the server is up; a sentinel (7.0) never logs "Ready to accept
   * connections", but logs its ID once it listens.
   */
  readyLog?: string;
}

export interface TestClientOptions extends RedisClientOptions {
  username?: string;
  /** Defaults to the `--requirepass` the server was started with, if any. */
  password?: string;
  db?: number;
}

export interface RedisServer {
  readonly host: string;
  readonly port: number;
  readonly dir: string;
  /** redis://127.0.0.1:<port>, without credentials. */
  readonly url: string;
  /** e.g. '7.0.15' */
  readonly version: string;
  /** PID of the running redis-server, undefined while stopped. */
  readonly pid: number | undefined;
  /** A connected client, closed by stop(). */
  client(options?: TestClientOptions): Promise<RedisClient>;
  /** SIGTERM, wait for exit, remove the temp dir (unless RF_KEEP_TEST_DIRS=1). */
  stop(): Promise<void>;
  /**
   * Sends a signal (SIGKILL unless given) and waits for the process to exit; SIGSTOP and SIGCONT
   * return at once, for simulating a hung master. The directory stays for restart().
   */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Stops the server if it runs and starts it again on the same port and directory. */
  restart(extraArgs?: string[]): Promise<void>;
  /** The last lines of redis.log and of the process's own output. */
  logTail(lines?: number): string;
}

const HOST = '127.0.0.1';
/** A Redis that is not ours listens there on the test machines. */
const FORBIDDEN_PORT = 6379;
const BIND_ATTEMPTS = 5;
const OUTPUT_KEEP = 64 * 1024;

const live = new Set<ChildProcess>();
const servers = new Set<Server>();

// Whatever happens to the test runner (a crash, process.exit), no redis-server outlives it.
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

/** The version of the redis-server under test (see redis-bin.ts for which one that is). */
export function redisServerVersion(): string {
  return serverBuild().version;
}

/** A TCP port nothing listens on right now (it may be taken by the time it is used). */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const probe = net.createServer();
      probe.on('error', reject);
      probe.listen(0, HOST, () => {
        const { port } = probe.address() as net.AddressInfo;
        probe.close(() => resolve(port));
      });
    });
    if (port !== FORBIDDEN_PORT) return port;
  }
}

/** A free port whose cluster bus port, port + 10000 (cluster.c), is free as well. */
export async function freeClusterPort(): Promise<number> {
  for (;;) {
    const port = await freePort();
    if (port + 10_000 > 65_535) continue;
    const busFree = await new Promise<boolean>((resolve) => {
      const probe = net.createServer();
      probe.once('error', () => resolve(false));
      probe.listen(port + 10_000, HOST, () => probe.close(() => resolve(true)));
    });
    if (busFree) return port;
  }
}

/** Starts a real redis-server on a free port in its own temp dir and waits until it answers. */
export async function startRedis(options: StartRedisOptions = {}): Promise<RedisServer> {
  const version = redisServerVersion();
  if (options.minVersion !== undefined && compareVersions(version, options.minVersion) < 0) {
    throw new Error(
      `redis-server ${version} is older than the ${options.minVersion} this test needs`,
    );
  }
  const args = options.args ?? [];
  if (args.includes('--port')) {
    throw new TypeError('startRedis picks the port itself; do not pass --port');
  }
  const ownDir = options.dir === undefined;
  const dir = options.dir ?? (await makeTempDir('rf-test-'));
  const server = new Server(
    dir,
    ownDir,
    args,
    version,
    options.readyTimeoutMs ?? 10_000,
    options.configFile,
    options.clusterBus === true,
    options.readyLog ?? 'Ready to accept connections',
  );
  try {
    await server.startOnFreePort();
  } catch (err) {
    await server.stop().catch(() => undefined);
    throw err;
  }
  return server;
}

/** Stops every server this process started; for afterAll hooks that want to be thorough. */
export async function cleanupAll(): Promise<void> {
  await Promise.all([...servers].map((server) => server.stop()));
}

class Server implements RedisServer {
  readonly host = HOST;
  port = 0;
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private output = '';
  private extraArgs: string[] = [];
  private readonly clients = new Set<RedisClient>();

  constructor(
    readonly dir: string,
    private readonly ownDir: boolean,
    private readonly args: string[],
    readonly version: string,
    private readonly readyTimeoutMs: number,
    private readonly configFile?: string,
    private readonly clusterBus = false,
    private readonly readyLog = 'Ready to accept connections',
  ) {
    servers.add(this);
  }

  get url(): string {
    return `redis://${this.host}:${this.port}`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  async startOnFreePort(): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      this.port = this.clusterBus ? await freeClusterPort() : await freePort();
      const outcome = await this.launch();
      if (outcome === 'ready') return;
      // Another process took the port between freePort() and redis-server's bind: try another.
      if (attempt === BIND_ATTEMPTS) {
        throw new Error(
          `redis-server could not bind a free port in ${BIND_ATTEMPTS} attempts\n${this.logTail()}`,
        );
      }
    }
  }

  async client(options: TestClientOptions = {}): Promise<RedisClient> {
    const password = options.password ?? this.configuredPassword();
    const client = await RedisClient.connect(
      {
        host: this.host,
        port: this.port,
        db: options.db ?? 0,
        tls: false,
        ...(options.username === undefined ? {} : { username: options.username }),
        ...(password === undefined ? {} : { password }),
      },
      options,
    );
    this.clients.add(client);
    return client;
  }

  async stop(): Promise<void> {
    this.closeClients();
    await this.terminate('SIGTERM');
    servers.delete(this);
    if (this.ownDir) await removeTempDir(this.dir);
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.child;
    if (child === undefined) return;
    child.kill(signal);
    if (signal === 'SIGSTOP' || signal === 'SIGCONT') return;
    await this.exited;
  }

  async restart(extraArgs: string[] = []): Promise<void> {
    this.closeClients();
    await this.terminate('SIGTERM');
    this.extraArgs = extraArgs;
    const outcome = await this.launch();
    if (outcome !== 'ready') {
      throw new Error(
        `redis-server could not bind port ${this.port} again on restart\n${this.logTail()}`,
      );
    }
  }

  logTail(lines = 30): string {
    let log = '';
    try {
      log = readFileSync(join(this.dir, 'redis.log'), 'utf8');
    } catch {
      log = '(no redis.log)';
    }
    const tail = (text: string): string => text.trimEnd().split('\n').slice(-lines).join('\n');
    return `--- ${join(this.dir, 'redis.log')} ---\n${tail(log)}\n--- redis-server output ---\n${tail(this.output)}`;
  }

  /** Returns 'port-taken' when the bind failed, so the caller can try another port. */
  private async launch(): Promise<'ready' | 'port-taken'> {
    const logfile = join(this.dir, 'redis.log');
    // After a restart the log already holds the previous run's lines; only what follows counts.
    const logStart = readLog(logfile).length;
    const where = [
      '--port',
      String(this.port),
      '--bind',
      HOST,
      '--logfile',
      logfile,
      '--dir',
      this.dir,
    ];
    // Redis 6 has DEBUG always on and refuses the option that 7.0 added to guard it.
    // appendfsync no: with everysec, a busy disk makes Redis postpone the AOF write while a
    // background fsync runs (aof.c flushAppendOnlyFile) and reply first, and the tests read the
    // AOF once the writes are answered.
    const defaults = [
      '--save',
      '',
      '--appendonly',
      'no',
      '--appendfsync',
      'no',
      ...(hasFeature('enable-debug-command') ? ['--enable-debug-command', 'yes'] : []),
    ];
    const args =
      this.configFile === undefined
        ? [...where, ...defaults, ...this.args, ...this.extraArgs]
        : [this.configFile, ...where, ...this.args, ...this.extraArgs];
    if (this.port === FORBIDDEN_PORT)
      throw new Error(`refusing to start redis-server on ${FORBIDDEN_PORT}`);
    const child = spawn(redisBin('server'), args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    live.add(child);
    const keep = (chunk: Buffer): void => {
      this.output = (this.output + chunk.toString('utf8')).slice(-OUTPUT_KEEP);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    let running = true;
    this.exited = new Promise((resolve) => {
      child.once('exit', () => {
        running = false;
        live.delete(child);
        if (this.child === child) this.child = undefined;
        resolve();
      });
    });
    child.once('error', (err) => {
      this.output += `\nspawn failed: ${err.message}`;
    });

    const deadline = Date.now() + this.readyTimeoutMs;
    while (Date.now() < deadline) {
      const log = readLog(logfile).subarray(logStart).toString('utf8');
      if (!running) {
        if (log.includes('Address already in use')) return 'port-taken';
        throw new Error(
          `redis-server exited during startup on port ${this.port}\n${this.logTail()}`,
        );
      }
      // Our log saying "Ready" proves the port is ours: a PING alone could reach another server
      // that took the port after freePort() probed it.
      if (log.includes(this.readyLog) && (await this.answersPing())) return 'ready';
      await sleep(20);
    }
    throw new Error(
      `redis-server on port ${this.port} did not answer PING within ${this.readyTimeoutMs} ms\n${this.logTail()}`,
    );
  }

  private async answersPing(): Promise<boolean> {
    let client: RedisClient | undefined;
    try {
      client = await RedisClient.connect(
        { host: this.host, port: this.port, db: 0, tls: false },
        { timeoutMs: 1_000 },
      );
      await client.call('PING');
      return true;
    } catch (err) {
      // A server with a password answers NOAUTH: it is up all the same.
      if (isRfError(err, 'RF_AUTH')) return true;
      return false;
    } finally {
      client?.destroy();
    }
  }

  private configuredPassword(): string | undefined {
    const all = [...this.args, ...this.extraArgs];
    const at = all.lastIndexOf('--requirepass');
    return at === -1 ? undefined : all[at + 1];
  }

  /** Destroyed rather than QUIT: the server may be the one a test has stopped or killed. */
  private closeClients(): void {
    for (const client of this.clients) client.destroy();
    this.clients.clear();
  }

  private async terminate(signal: NodeJS.Signals): Promise<void> {
    const child = this.child;
    if (child === undefined) return;
    child.kill(signal);
    // A server a test paused with SIGSTOP only acts on SIGTERM once it runs again.
    child.kill('SIGCONT');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await this.exited;
    clearTimeout(timer);
  }
}

function readLog(logfile: string): Buffer {
  try {
    return readFileSync(logfile);
  } catch {
    return Buffer.alloc(0);
  }
}

/** Boots a directory as `redis-server --dir DIR --appendonly yes` would, and reads its DEBUG DIGEST. */
export async function bootedDigest(dir: string): Promise<string> {
  const booted = await startRedis({ dir, args: ['--appendonly', 'yes'] });
  try {
    return String(await (await booted.client()).call('DEBUG', 'DIGEST'));
  } finally {
    await booted.stop();
  }
}
