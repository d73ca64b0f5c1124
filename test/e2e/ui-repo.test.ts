import { type ChildProcess, spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, type RedisServer, startRedis } from '../helpers/redis.js';
import { RF_BIN, RfDaemon, rf } from '../helpers/rf.js';
import { S3_ENV, type S3Server, startS3 } from '../helpers/s3.js';
import { caughtUp } from '../helpers/scope.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

/**
 * `rf ui --repo`: the page's endpoints on a host that never ran rf listen, from the bucket
 * alone, give what `rf info --repo`, `rf restore --repo --dry-run` and `rf log --repo` print.
 */

let s3: S3Server;
let master: RedisServer;
let work: string;
let repoFlags: string[];
let ui: ChildProcess;
let base: string;

async function get(pathname: string): Promise<unknown> {
  const res = await fetch(`${base}${pathname}`);
  const body = await res.json();
  expect(res.status, JSON.stringify(body)).toBe(200);
  return body;
}

async function cli(args: string[]): Promise<string> {
  const res = await rf(args, { env: S3_ENV });
  expect(res.code, res.stderr).toBe(0);
  return res.stdout;
}

beforeAll(async () => {
  s3 = await startS3();
  master = await startRedis({ args: ['--repl-diskless-sync-delay', '0'] });
  const client = await master.client();
  work = await makeTempDir('rf-ui-repo-');
  const store = path.join(work, 'store');
  repoFlags = s3.flags('archives/ui');
  const daemon = RfDaemon.start(
    ['--source', master.url, '--store', store, ...repoFlags, '--segment-size', '4k'],
    S3_ENV,
  );
  await daemon.waitForLog((l) => l.msg === 'first timeline started from the base');
  for (let i = 0; i < 300; i++) await client.call('SET', `k:${i}`, 'x'.repeat(40));
  await client.call('SET', 'canary:1', 'one');
  await client.call('DEL', 'canary:1');
  // Every write is durable before the daemon is asked to stop (it then seals and uploads it).
  await caughtUp(master);
  const exit = await daemon.stop('SIGTERM');
  expect(exit.code, daemon.output).toBe(0);
  // The host is gone: only the bucket is left.
  await fs.rm(store, { recursive: true, force: true });

  const port = await freePort();
  ui = spawn(
    process.execPath,
    [RF_BIN, 'ui', '--store', store, ...repoFlags, '--listen', `127.0.0.1:${port}`],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...S3_ENV } },
  );
  let output = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`rf ui did not start\n${output}`)), 20_000);
    ui.stderr?.on('data', (d: Buffer) => (output += d.toString()));
    ui.stdout?.on('data', (d: Buffer) => {
      output += d.toString();
      if (output.includes('serving')) {
        clearTimeout(timer);
        resolve();
      }
    });
    ui.on('close', (code) => reject(new Error(`rf ui exited ${code}\n${output}`)));
  });
  base = `http://127.0.0.1:${port}`;
}, 90_000);

afterAll(async () => {
  ui?.kill('SIGKILL');
  await master?.stop();
  await s3?.stop();
  if (work !== undefined) await removeTempDir(work);
});

describe('rf ui --repo, from the bucket alone', () => {
  it('shows what rf info --repo --json holds', async () => {
    const page = (await get('/api/info')) as { sources: { restorable: unknown[] }[] };
    const printed = JSON.parse(await cli(['info', '--store', 'unused', ...repoFlags, '--json']));
    expect(page.sources).toEqual(printed.sources);
    expect(page.sources[0]!.restorable).toHaveLength(1);
  });

  it('plans as rf restore --repo --dry-run, and lists as rf log --repo --key', async () => {
    const log = (await get('/api/log?name=default&key=canary%3A*')) as {
      records: { time: string; command: string }[];
    };
    const printed = (await cli(['log', ...repoFlags, '--key', 'canary:*', '--json']))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(log.records).toEqual(printed);
    expect(log.records.map((r) => r.command)).toEqual(['SET', 'DEL']);

    // Just before the DEL.
    const until = new Date(Date.parse(log.records[1]!.time) - 1).toISOString();
    const { plan } = (await get(`/api/plan?name=default&until=${until}`)) as {
      plan: Record<string, unknown>;
    };
    const dry = JSON.parse(
      await cli(['restore', ...repoFlags, '--until', until, '--dry-run', '--json']),
    );
    const { seconds: _a, ...shown } = plan;
    const { seconds: _b, ...expected } = dry;
    expect(shown).toEqual(expected);
    expect((shown.lastWrite as { command: string }).command.toUpperCase()).not.toBe('DEL');
  });
});
