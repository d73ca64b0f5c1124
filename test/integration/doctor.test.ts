import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Check } from '../../src/aof/settings.js';
import { run as doctor } from '../../src/cli/doctor.js';
import { waitFor } from '../helpers/load.js';
import { freePort, type RedisServer, startRedis } from '../helpers/redis.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

interface Report {
  ok: boolean;
  checks: Check[];
  aclLine: string;
  configRewrite?: { status: string };
}

let servers: RedisServer[] = [];
let cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  vi.restoreAllMocks();
  for (const s of servers) await s.stop();
  servers = [];
  for (const c of cleanups) await c();
  cleanups = [];
});

/** Runs rf doctor --json and returns its exit code and the report it printed. */
async function runDoctor(source: string, fix = false): Promise<{ exit: number; report: Report }> {
  let printed = '';
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    printed += chunk.toString();
    return true;
  });
  try {
    const exit = await doctor({
      source,
      fix,
      rfUser: 'rf',
      reconnectWindow: 60_000,
      json: true,
      sampleMs: 100,
    });
    return { exit, report: JSON.parse(printed) as Report };
  } finally {
    vi.restoreAllMocks();
  }
}

const byName = (report: Report) => Object.fromEntries(report.checks.map((c) => [c.name, c]));

describe('rf doctor', () => {
  it('explains what needs attention, fixes what CONFIG SET can, and passes once the rf user exists', async () => {
    const redis = await startRedis({
      args: ['--client-output-buffer-limit', 'replica 1mb 512kb 60'],
    });
    servers.push(redis);
    const client = await redis.client();

    const first = await runDoctor(redis.url);
    expect(first.exit).toBe(1);
    expect(first.report.ok).toBe(false);
    const checks = byName(first.report);
    expect(checks.appendonly).toMatchObject({
      status: 'fail',
      current: 'no',
      fix: ['CONFIG', 'SET', 'appendonly', 'yes'],
    });
    expect(checks['auto-aof-rewrite-percentage']).toMatchObject({ status: 'warn', current: '100' });
    expect(checks['aof-timestamp-enabled']).toMatchObject({ status: 'warn', current: 'no' });
    expect(checks['client-output-buffer-limit replica']?.status).toBe('warn');
    expect(checks['repl-backlog-size']?.status).toBe('ok');
    expect(checks['ACL user rf']).toMatchObject({ status: 'warn', current: 'no such user' });
    for (const c of first.report.checks) expect(c.why.length).toBeGreaterThan(20);

    const fixed = await runDoctor(redis.url, true);
    // The ACL user is the operator's to create (it needs a password): still one thing to do.
    expect(fixed.exit).toBe(1);
    expect(fixed.report.checks.filter((c) => c.status !== 'ok').map((c) => c.name)).toEqual([
      'ACL user rf',
    ]);
    expect(fixed.report.configRewrite).toEqual({ status: 'no-config-file' });
    const config = async (name: string) =>
      ((await client.call('CONFIG', 'GET', name)) as string[])[1];
    expect(await config('appendonly')).toBe('yes');
    expect(await config('auto-aof-rewrite-percentage')).toBe('0');
    expect(await config('aof-timestamp-enabled')).toBe('yes');
    expect(await config('client-output-buffer-limit')).toContain('slave 268435456 67108864 60');

    // The printed line, with a password put in, creates a user that passes.
    const line = fixed.report.aclLine.replace('>CHOOSE-A-PASSWORD', '>s3cret-pass');
    await client.call(...line.split(' '));
    const again = await runDoctor(redis.url);
    expect(again.report.checks.filter((c) => c.status !== 'ok')).toEqual([]);
    expect(again.exit).toBe(0);

    // …and that user can do what rf does, and not much else.
    const rf = await redis.client({ username: 'rf', password: 's3cret-pass' });
    expect((await rf.info('persistence')).aof_enabled).toBe('1');
    await expect(rf.call('SET', 'x', '1')).rejects.toThrow(/NOPERM/);
  });

  it('saves its fixes with CONFIG REWRITE when Redis runs from a config file, and they survive a restart', async () => {
    const dir = await makeTempDir('rf-doctor-conf-');
    const conf = join(dir, 'redis.conf');
    await writeFile(conf, '# written by the rf doctor test\nsave ""\nappendonly no\n');
    const redis = await startRedis({ configFile: conf });
    servers.push(redis);
    cleanups.push(() => removeTempDir(dir));

    const fixed = await runDoctor(redis.url, true);
    expect(fixed.report.configRewrite).toEqual({ status: 'done' });
    const text = await readFile(conf, 'utf8');
    for (const line of [
      /^appendonly yes$/m,
      /^auto-aof-rewrite-percentage 0$/m,
      /^aof-timestamp-enabled yes$/m,
    ]) {
      expect(text).toMatch(line);
    }

    // Redis refuses to shut down while it writes the first AOF that appendonly yes started.
    const admin = await redis.client();
    await waitFor(async () => {
      const p = await admin.info('persistence');
      return p.aof_rewrite_in_progress === '0' && p.aof_rewrite_scheduled === '0';
    }, 'the first AOF to be written');
    await redis.restart();
    const client = await redis.client();
    const config = async (name: string) =>
      ((await client.call('CONFIG', 'GET', name)) as string[])[1];
    expect(await config('appendonly')).toBe('yes');
    expect(await config('auto-aof-rewrite-percentage')).toBe('0');
    expect(await config('aof-timestamp-enabled')).toBe('yes');
    const again = await runDoctor(redis.url);
    expect(again.report.checks.filter((c) => c.status !== 'ok').map((c) => c.name)).toEqual([
      'ACL user rf',
    ]);
  });

  it('says which commands an existing rf user lacks', async () => {
    const redis = await startRedis({ args: ['--appendonly', 'yes'] });
    servers.push(redis);
    const client = await redis.client();
    await client.call('ACL', 'SETUSER', 'rf', 'on', '>pw', '-@all', '+ping', '+info');
    const { exit, report } = await runDoctor(redis.url);
    expect(exit).toBe(1);
    const acl = byName(report)['ACL user rf']!;
    expect(acl.status).toBe('fail');
    expect(acl.current).toMatch(/missing psync, replconf, role, config\|get, bgrewriteaof/);
  });

  it('exits 3 when the Redis cannot be reached', async () => {
    const port = await freePort();
    vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    const exit = await doctor({
      source: `redis://127.0.0.1:${port}`,
      rfUser: 'rf',
      reconnectWindow: 60_000,
      sampleMs: 100,
    });
    expect(exit).toBe(3);
  });
});
