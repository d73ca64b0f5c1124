import { type ChildProcess, spawn } from 'node:child_process';
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
