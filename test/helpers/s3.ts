import { type ChildProcess, spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { waitFor } from './load.js';
import { freePort } from './redis.js';
import { makeTempDir, removeTempDir } from './tmp.js';

const require = createRequire(import.meta.url);
const S3RVER_BIN = path.join(
  path.dirname(require.resolve('s3rver/package.json')),
  'bin',
  's3rver.js',
);

/** s3rver's fixed credentials (REDIS-FACTS.md, "Object storage"). */
export const S3_ENV = {
  AWS_ACCESS_KEY_ID: 'S3RVER',
  AWS_SECRET_ACCESS_KEY: 'S3RVER',
  AWS_REGION: 'us-east-1',
} as const;

export interface S3Server {
  readonly port: number;
  readonly endpoint: string;
  readonly bucket: string;
  /** The directory s3rver keeps its objects in: a test may damage them there. */
  readonly dir: string;
  /** `--repo` and endpoint flags for rf, for `prefix` in the test bucket. */
  flags(prefix: string): string[];
  stop(): Promise<void>;
}

/**
 * A real S3-compatible server (s3rver) as its own process on a free port, with its own
 * temp dir and one bucket; stopped and removed by `stop`.
 */
export async function startS3(bucket = 'rf-test'): Promise<S3Server> {
  const dir = await makeTempDir('rf-s3-');
  const port = await freePort();
  const child: ChildProcess = spawn(
    process.execPath,
    [
      S3RVER_BIN,
      '-d',
      dir,
      '-a',
      '127.0.0.1',
      '-p',
      String(port),
      '--silent',
      '--no-vhost-buckets',
      '--configure-bucket',
      bucket,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let exited = false;
  let output = '';
  child.stdout?.on('data', (d: Buffer) => {
    output += d.toString();
  });
  child.stderr?.on('data', (d: Buffer) => {
    output += d.toString();
  });
  child.on('exit', () => {
    exited = true;
  });
  const endpoint = `http://127.0.0.1:${port}`;
  await waitFor(
    async () => {
      if (exited) throw new Error(`s3rver exited: ${output}`);
      try {
        const res = await fetch(`${endpoint}/${bucket}`);
        return res.status < 500;
      } catch {
        return false;
      }
    },
    's3rver to answer',
    20_000,
  );
  return {
    port,
    endpoint,
    bucket,
    dir,
    flags: (prefix: string) => [
      '--repo',
      `s3://${bucket}/${prefix}`,
      '--s3-endpoint',
      endpoint,
      '--s3-path-style',
    ],
    async stop() {
      if (!exited) {
        const gone = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGKILL');
        await gone;
      }
      await removeTempDir(dir);
    },
  };
}

export interface FlakyFront {
  readonly port: number;
  readonly endpoint: string;
  /** `ok` forwards to the server; `503` holds each request for `hangMs`, then answers 503. */
  mode: 'ok' | '503';
  /** Requests answered 503 so far. */
  readonly refused: number;
  /**
   * The next `count` PUTs whose path matches `path` reach the server, which stores the object,
   * but their replies are lost: the connection is cut instead, as a link that fails after the
   * request went through does.
   */
  loseReplies(path: RegExp, count: number): void;
  /** Replies lost so far. */
  readonly lost: number;
  close(): Promise<void>;
}

/**
 * An HTTP front for an S3 server that can turn unwell: while in `503` mode it holds every
 * request for a while and then answers 503 Service Unavailable (SlowDown), as a store under
 * load does. Requests are forwarded unchanged (the SigV4 signature covers the Host header the
 * client sent, which the server checks as it receives it).
 */
export async function startFlakyFront(targetPort: number, hangMs = 2_000): Promise<FlakyFront> {
  const http = await import('node:http');
  let refused = 0;
  const timers = new Set<NodeJS.Timeout>();
  const state = { mode: 'ok' as 'ok' | '503' };
  let lose: { path: RegExp; left: number } | null = null;
  let lost = 0;
  const server = http.createServer((req, res) => {
    if (state.mode === '503') {
      req.resume();
      const t = setTimeout(() => {
        timers.delete(t);
        refused++;
        res
          .writeHead(503, { 'content-type': 'application/xml' })
          .end(
            '<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>',
          );
      }, hangMs);
      timers.add(t);
      return;
    }
    const upstream = http.request(
      {
        host: '127.0.0.1',
        port: targetPort,
        method: req.method,
        path: req.url,
        headers: req.headers,
      },
      (up) => {
        if (
          req.method === 'PUT' &&
          lose !== null &&
          lose.left > 0 &&
          lose.path.test(req.url ?? '')
        ) {
          lose.left--;
          lost++;
          up.resume();
          up.on('end', () => req.socket.destroy());
          return;
        }
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      },
    );
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    endpoint: `http://127.0.0.1:${port}`,
    get mode() {
      return state.mode;
    },
    set mode(m) {
      state.mode = m;
    },
    get refused() {
      return refused;
    },
    loseReplies(path, count) {
      lose = { path, left: count };
    },
    get lost() {
      return lost;
    },
    async close() {
      for (const t of timers) clearTimeout(t);
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** Until the bucket holds a first stream pack (s3rver keeps objects as files under its dir). */
export async function waitForStreamPack(s3: S3Server): Promise<void> {
  await waitFor(
    async () =>
      (await fs.readdir(s3.dir, { recursive: true })).some((f) => String(f).includes('/seg/')),
    'a pack in the bucket',
  );
}

/** Every byte the bucket holds, as s3rver stores it: what no secret may be found in. */
export async function bucketBytes(s3: S3Server): Promise<Buffer> {
  const files = await fs.readdir(s3.dir, { recursive: true, withFileTypes: true });
  const parts: Buffer[] = [];
  for (const f of files)
    if (f.isFile()) parts.push(await fs.readFile(path.join(f.parentPath, f.name)));
  return Buffer.concat(parts);
}
