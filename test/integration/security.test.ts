import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, type RedisServer, startRedis } from '../helpers/redis.js';
import { RfDaemon, rf } from '../helpers/rf.js';
import { caughtUp } from '../helpers/scope.js';
import { makeTestCertificate } from '../helpers/tls.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

/** Capture over TLS and with a least-privilege ACL user; the wrong certificate or permission fails clearly. */

let work: string;
const cleanups: (() => Promise<unknown>)[] = [];
beforeAll(async () => {
  work = await makeTempDir('rf-security-');
});
afterAll(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
  await removeTempDir(work);
});

describe('rf listen over rediss://', () => {
  let master: RedisServer;
  let tlsPort: number;
  let cert: string;
  beforeAll(async () => {
    const made = makeTestCertificate(work);
    cert = made.cert;
    tlsPort = await freePort();
    master = await startRedis({
      args: [
        '--repl-diskless-sync-delay',
        '0',
        '--tls-port',
        String(tlsPort),
        '--tls-cert-file',
        made.cert,
        '--tls-key-file',
        made.key,
        '--tls-ca-cert-file',
        made.cert,
        '--tls-auth-clients',
        'no',
      ],
    });
    cleanups.push(() => master.stop());
  });

  it('captures the base and the stream through TLS', async () => {
    const store = path.join(work, 'tls-store');
    const d = RfDaemon.start([
      '--source',
      `rediss://localhost:${tlsPort}`,
      '--tls-ca',
      cert,
      '--store',
      store,
    ]);
    cleanups.push(() => d.stop('SIGKILL'));
    await d.waitForLog((l) => l.msg === 'first timeline started from the base');
    const c = await master.client();
    await c.call('SET', 'over', 'tls');
    await caughtUp(master);
    expect((await d.stop()).code).toBe(0);
    const info = JSON.parse((await rf(['info', '--store', store, '--json'])).stdout);
    expect(info.sources[0].timelines[0].durableOffset).toBeGreaterThan(0);
    expect(info.sources[0].url).toBe(`rediss://localhost:${tlsPort}`);
  });

  it('refuses a server whose certificate the CA does not vouch for: RF_CONNECT with a TLS hint, exit 3', async () => {
    const other = await makeTempDir('rf-other-ca-');
    cleanups.push(() => removeTempDir(other));
    const wrong = makeTestCertificate(other, 'other');
    const res = await rf([
      'listen',
      '--source',
      `rediss://localhost:${tlsPort}`,
      '--tls-ca',
      wrong.cert,
      '--store',
      path.join(work, 'wrong-ca'),
      '--connect-timeout',
      '3000',
    ]);
    expect(res.code).toBe(3);
    expect(res.stderr).toContain('RF_CONNECT');
    expect(res.stderr).toMatch(/TLS/);
  });
});

describe('rf listen as a least-privilege ACL user', () => {
  let master: RedisServer;
  beforeAll(async () => {
    master = await startRedis({ args: ['--repl-diskless-sync-delay', '0'] });
    cleanups.push(() => master.stop());
    const c = await master.client();
    await c.call(
      'ACL',
      'SETUSER',
      'rf',
      'on',
      '>rf-pass',
      'resetkeys',
      'resetchannels',
      '-@all',
      '+psync',
      '+replconf',
      '+ping',
      '+info',
      '+role',
      '+config|get',
      '+bgrewriteaof',
    );
    await c.call(
      'ACL',
      'SETUSER',
      'rf-nopsync',
      'on',
      '>np-pass',
      'resetkeys',
      'resetchannels',
      '-@all',
      '+replconf',
      '+ping',
      '+info',
      '+role',
    );
    await c.call('ACL', 'SETUSER', 'default', 'off');
  });

  it('captures with only the permissions rf needs', async () => {
    const store = path.join(work, 'acl-store');
    const d = RfDaemon.start([
      '--source',
      `redis://rf:rf-pass@127.0.0.1:${master.port}`,
      '--store',
      store,
    ]);
    cleanups.push(() => d.stop('SIGKILL'));
    await d.waitForLog((l) => l.msg === 'first timeline started from the base');
    // Only the owner can read the archive.
    const { readdir, stat } = await import('node:fs/promises');
    expect((await stat(store)).mode & 0o777).toBe(0o700);
    for (const sub of ['db', 'bases'])
      expect((await stat(path.join(store, sub))).mode & 0o777).toBe(0o700);
    for (const f of await readdir(path.join(store, 'db'))) {
      expect((await stat(path.join(store, 'db', f))).mode & 0o077, f).toBe(0);
    }
    const admin = await master.client({ username: 'rf', password: 'rf-pass' });
    // The rf user cannot write: prove the ACL is as tight as claimed.
    await expect(admin.call('SET', 'x', '1')).rejects.toThrow(/NOPERM/);
    expect((await d.stop()).code).toBe(0);
  });

  it('a user without +psync: RF_AUTH naming PSYNC and the ACL line to grant, exit 3', async () => {
    const res = await rf([
      'listen',
      '--source',
      `redis://rf-nopsync:np-pass@127.0.0.1:${master.port}`,
      '--store',
      path.join(work, 'nopsync'),
      '--connect-timeout',
      '3000',
    ]);
    expect(res.code).toBe(3);
    expect(res.stderr).toContain('RF_AUTH');
    expect(res.stderr).toContain('PSYNC');
    expect(res.stderr).toContain('ACL SETUSER');
    expect(res.stderr).not.toContain('np-pass');
  });
});
