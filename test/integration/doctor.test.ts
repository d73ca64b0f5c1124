import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { run as doctor } from '../../src/cli/doctor.js';
import type { Check } from '../../src/doctor/settings.js';
import { startFakeMaster } from '../helpers/fake-master.js';
import { waitFor } from '../helpers/load.js';
import { freePort, type RedisServer, startRedis } from '../helpers/redis.js';
import { hasFeature, lacks } from '../helpers/redis-bin.js';
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

/** Redis 6 has no AOF timestamps: rf doctor then gives no advice about them. */
const timestamps = hasFeature('AOF timestamps');

const byName = (report: Report) => Object.fromEntries(report.checks.map((c) => [c.name, c]));

describe('rf doctor', () => {
  it('explains what needs attention, fixes what CONFIG SET can, and passes once the rf user exists', async () => {
    const redis = await startRedis();
    servers.push(redis);
    const client = await redis.client();
    // (CONFIG SET rather than a flag: Redis 6 reads a quoted multi-word flag as one word.)
    await client.call('CONFIG', 'SET', 'client-output-buffer-limit', 'replica 1048576 524288 60');

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
    expect(checks['aof-timestamp-enabled']).toMatchObject(
      timestamps ? { status: 'warn', current: 'no' } : { status: 'ok', fix: null },
    );
    expect(checks['aof layout']?.current).toMatch(
      timestamps ? /^appendonlydir\/ / : /^appendonly\.aof /,
    );
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
    if (timestamps) expect(await config('aof-timestamp-enabled')).toBe('yes');
    expect(await config('client-output-buffer-limit')).toContain('slave 268435456 67108864 60');

    // The printed line, with a password put in, creates a user that passes.
    const line = fixed.report.aclLine.replace('>CHOOSE-A-PASSWORD', '>s3cret-pass');
    await client.call(...line.split(' '));
    const again = await runDoctor(redis.url);
    if (hasFeature('ACL DRYRUN')) {
      expect(again.report.checks.filter((c) => c.status !== 'ok')).toEqual([]);
      expect(again.exit).toBe(0);
    } else {
      // Redis 6 cannot say what a user may do: the check says so rather than pass or fail.
      expect(byName(again.report)['ACL user rf']?.status).toBe('unknown');
    }

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
      ...(timestamps ? [/^aof-timestamp-enabled yes$/m] : []),
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
    if (timestamps) expect(await config('aof-timestamp-enabled')).toBe('yes');
    const again = await runDoctor(redis.url);
    expect(again.report.checks.filter((c) => c.status !== 'ok').map((c) => c.name)).toEqual([
      'ACL user rf',
    ]);
  });

  it.skipIf(lacks('ACL DRYRUN'))(
    'says which commands an existing rf user lacks (ACL DRYRUN)',
    async () => {
      const redis = await startRedis({ args: ['--appendonly', 'yes'] });
      servers.push(redis);
      const client = await redis.client();
      await client.call('ACL', 'SETUSER', 'rf', 'on', '>pw', '-@all', '+ping', '+info');
      const { exit, report } = await runDoctor(redis.url);
      expect(exit).toBe(1);
      const acl = byName(report)['ACL user rf']!;
      expect(acl.status).toBe('fail');
      expect(acl.current).toMatch(/missing psync, replconf, role, config\|get, bgrewriteaof/);
    },
  );

  it('on Redis 6 (played by a scripted master: no 6.x installs here) gives no timestamp advice and says ACLs cannot be tested', async () => {
    const bulk = (v: string) => `$${Buffer.byteLength(v)}\r\n${v}\r\n`;
    const array = (items: string[]) => `*${items.length}\r\n${items.join('')}`;
    // CONFIG GET as 6.2.16 answers it: an empty array for a setting 6.2 does not have.
    const config: Record<string, string> = {
      appendonly: 'yes',
      'auto-aof-rewrite-percentage': '0',
      'repl-backlog-size': '1048576',
      'client-output-buffer-limit':
        'normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60',
      appendfilename: 'appendonly.aof',
    };
    const master = await startFakeMaster(async (conn) => {
      for (;;) {
        const c = await conn.readCommand(10_000).catch(() => null);
        if (c === null) return;
        const name = c
          .map((a) => a.toUpperCase())
          .slice(0, 2)
          .join(' ');
        if (name.startsWith('INFO')) {
          await conn.write(
            bulk('redis_version:6.2.16\r\nredis_mode:standalone\r\nmaster_repl_offset:0\r\n'),
          );
        } else if (name === 'CONFIG GET') {
          const v = config[c[2]!];
          await conn.write(v === undefined ? '*0\r\n' : array([bulk(c[2]!), bulk(v)]));
        } else if (name === 'ACL GETUSER') {
          await conn.write(
            array([bulk('flags'), array([bulk('on')]), bulk('commands'), bulk('-@all +psync')]),
          );
        } else if (name === 'ACL DRYRUN') {
          await conn.write("-ERR Unknown subcommand or wrong number of arguments for 'DRYRUN'\r\n");
        } else await conn.write('+OK\r\n');
      }
    });
    cleanups.push(() => master.close());
    const { exit, report } = await runDoctor(`redis://127.0.0.1:${master.port}`, true);
    const checks = byName(report);
    expect(checks['aof-timestamp-enabled']).toMatchObject({ status: 'ok', fix: null });
    expect(checks['aof-timestamp-enabled']?.why).toContain('chunk precision');
    expect(checks['aof layout']?.current).toBe('appendonly.aof (one file, Redis 6)');
    expect(checks['ACL user rf']).toMatchObject({ status: 'unknown', current: '-@all +psync' });
    expect(exit).toBe(1);
    expect(master.errors).toEqual([]);
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
