import { existsSync } from 'node:fs';
import { readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { freePort } from '../helpers/redis.js';
import { RfDaemon, rf } from '../helpers/rf.js';
import { testScope } from '../helpers/scope.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

const scope = testScope();
const { storeDir } = scope;
const redis = scope.master;

/** Runs `rf listen` expecting it to give up at once. */
function listenOnce(args: string[], env: NodeJS.ProcessEnv = {}) {
  return rf(['listen', ...args, '--connect-timeout', '3000'], { env, timeoutMs: 20_000 });
}

describe('rf listen refuses bad input with a clear RF_* error', () => {
  it('unreachable host: RF_CONNECT, exit 3, nothing archived', async () => {
    const port = await freePort();
    const store = await storeDir();
    const res = await listenOnce(['--source', `redis://127.0.0.1:${port}`, '--store', store]);
    expect(res.code).toBe(3);
    expect(res.stderr).toContain('RF_CONNECT');
    expect(res.stderr).toContain(`127.0.0.1:${port}`);
    expect(res.stderr).toMatch(/next: /);
    // A first run that could not connect leaves no store behind.
    expect(existsSync(store)).toBe(false);
  });

  it('wrong password: RF_AUTH, exit 3, and the password appears nowhere in the output', async () => {
    const r = await redis(['--requirepass', 'right-secret']);
    const store = await storeDir();
    const res = await listenOnce([
      '--source',
      `redis://:wrong-secret@127.0.0.1:${r.port}`,
      '--store',
      store,
    ]);
    expect(res.code).toBe(3);
    expect(res.stderr).toContain('RF_AUTH');
    expect(`${res.stdout}${res.stderr}`).not.toContain('wrong-secret');
  });

  it('captures with the password from RF_PASSWORD and never logs it', async () => {
    const r = await redis(['--requirepass', 'env-secret']);
    const store = await storeDir();
    const d = RfDaemon.start(['--source', r.url, '--store', store], { RF_PASSWORD: 'env-secret' });
    scope.defer(() => d.stop('SIGKILL'));
    await d.waitForLog((l) => l.msg === 'first timeline started from the base');
    expect((await d.stop()).code).toBe(0);
    expect(d.output).not.toContain('env-secret');
  });

  it('keeps a password given in the URL out of the process title and the logs', async () => {
    const r = await redis(['--requirepass', 'url-secret']);
    const store = await storeDir();
    const d = RfDaemon.start([
      '--source',
      `redis://:url-secret@127.0.0.1:${r.port}`,
      '--store',
      store,
    ]);
    scope.defer(() => d.stop('SIGKILL'));
    await d.waitForLog((l) => l.msg === 'first timeline started from the base');
    const { readFile } = await import('node:fs/promises');
    const cmdline = await readFile(`/proc/${d.child.pid}/cmdline`, 'latin1');
    expect(cmdline).toContain('rf listen default');
    expect(cmdline).not.toContain('url-secret');
    expect((await d.stop()).code).toBe(0);
    expect(d.output).not.toContain('url-secret');
    const info = await rf(['info', '--store', store, '--json']);
    expect(info.stdout).not.toContain('url-secret');
    expect(JSON.parse(info.stdout).sources[0].url).toBe(`redis://:***@127.0.0.1:${r.port}`);
  });

  it('a source that is itself a replica: RF_SOURCE_IS_REPLICA, exit 2, naming its master', async () => {
    const m = await redis();
    const replica = await redis(['--replicaof', '127.0.0.1', String(m.port)]);
    const store = await storeDir();
    const res = await listenOnce(['--source', replica.url, '--store', store]);
    expect(res.code).toBe(2);
    expect(res.stderr).toContain('RF_SOURCE_IS_REPLICA');
    expect(res.stderr).toContain(`127.0.0.1:${m.port}`);
  });

  it('an unwritable store directory: RF_STORE_UNWRITABLE, exit 3', async () => {
    const r = await redis();
    const parent = await makeTempDir('rf-ro-');
    scope.defer(() => removeTempDir(parent));
    // A path under a regular file can be created by nobody, root included (permission bits would not stop root).
    await writeFile(path.join(parent, 'file'), 'x');
    const store = path.join(parent, 'file', 'store');
    const res = await listenOnce(['--source', r.url, '--store', store]);
    expect(res.code).toBe(3);
    expect(res.stderr).toContain('RF_STORE_UNWRITABLE');
    expect(res.stderr).toContain(store);
  });

  it('a store path too long for the control socket: RF_USAGE, exit 2, nothing created', async () => {
    const r = await redis();
    const parent = await makeTempDir('rf-long-');
    scope.defer(() => removeTempDir(parent));
    const store = path.join(parent, 'd'.repeat(Math.max(1, 100 - parent.length)));
    const res = await listenOnce(['--source', r.url, '--store', store]);
    expect(res.code).toBe(2);
    expect(res.stderr).toContain('RF_USAGE');
    expect(res.stderr).toContain(`${path.join(store, 'rf.sock')} is`);
    expect(res.stderr).toContain('at most 99 bytes');
    expect(await readdir(parent)).toEqual([]);
  });

  it('a --metrics or --ingest port already taken: RF_USAGE, exit 2, and the process ends', async () => {
    const r = await redis();
    // The port is taken by the master itself; rf has connected to it by the time it fails.
    const taken = `127.0.0.1:${r.port}`;
    const tokenDir = await makeTempDir('rf-token-');
    scope.defer(() => removeTempDir(tokenDir));
    const token = path.join(tokenDir, 'token');
    await writeFile(token, 'a-long-enough-ingest-token\n', { mode: 0o600 });
    for (const extra of [
      ['--metrics', taken],
      ['--ingest', taken, '--ingest-token-file', token],
    ]) {
      const store = await storeDir();
      const started = Date.now();
      const res = await listenOnce(['--source', r.url, '--store', store, ...extra]);
      expect(res.code, extra[0]).toBe(2);
      expect(res.stderr).toContain('RF_USAGE');
      expect(res.stderr).toContain(taken);
      // It used to stay alive on the connection its master watch opened meanwhile.
      expect(Date.now() - started).toBeLessThan(15_000);
    }
  });

  it('an --ingest token or TLS file that cannot be read: RF_USAGE naming that flag, exit 2', async () => {
    const r = await redis();
    const files = await makeTempDir('rf-ingest-files-');
    scope.defer(() => removeTempDir(files));
    const missing = path.join(files, 'missing');
    const token = path.join(files, 'token');
    await writeFile(token, 'a-long-enough-ingest-token\n', { mode: 0o600 });
    const cases: Array<[string, string[]]> = [
      ['--ingest-token-file', ['--ingest-token-file', missing]],
      [
        '--ingest-tls-cert',
        ['--ingest-token-file', token, '--ingest-tls-cert', missing, '--ingest-tls-key', missing],
      ],
    ];
    for (const [flag, extra] of cases) {
      const store = await storeDir();
      const res = await listenOnce([
        '--source',
        r.url,
        '--store',
        store,
        '--ingest',
        '127.0.0.1:0',
        ...extra,
      ]);
      expect(res.code, flag).toBe(2);
      expect(res.stderr).toContain(`RF_USAGE: cannot read ${flag} ${missing}`);
    }
  });

  it('a store already owned by another rf listen: RF_STORE_LOCKED, exit 3, and the owner carries on', async () => {
    const r = await redis();
    const c = await r.client();
    const store = await storeDir();
    const owner = RfDaemon.start(['--source', r.url, '--store', store]);
    scope.defer(() => owner.stop('SIGKILL'));
    await owner.waitForLog((l) => l.msg === 'first timeline started from the base');
    const res = await listenOnce(['--source', r.url, '--store', store]);
    expect(res.code).toBe(3);
    expect(res.stderr).toContain('RF_STORE_LOCKED');
    await c.call('SET', 'after', '1');
    const info = await rf(['info', '--store', store, '--json']);
    expect(info.code).toBe(0);
    const src = JSON.parse(info.stdout).sources[0];
    expect(src.timelines).toHaveLength(1);
    expect(src.daemon.pid).toBe(owner.child.pid);
    expect((await owner.stop()).code).toBe(0);
    expect(await readdir(path.join(store, 'tmp'))).toEqual([]);
  });

  it('a bad URL: RF_BAD_URL, exit 2', async () => {
    const store = await storeDir();
    const res = await listenOnce(['--source', 'http://nope', '--store', store]);
    expect(res.code).toBe(2);
    expect(res.stderr).toContain('RF_BAD_URL');
  });
});
