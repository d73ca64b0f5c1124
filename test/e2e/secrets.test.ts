import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { commandLineSecrets } from '../../src/cli/argv-secrets.js';
import { waitFor } from '../helpers/load.js';
import { RF_BIN, rf } from '../helpers/rf.js';
import { testScope } from '../helpers/scope.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

/**
 * Secrets on the command line are visible to every user of the host until rf hides them: rf
 * hides them first thing and says so, as redis-cli does for -a; secret files and a store that
 * others can read are named too.
 */

const scope = testScope();
async function tempDir(): Promise<string> {
  const dir = await makeTempDir('rf-secrets-');
  scope.defer(() => removeTempDir(dir));
  return dir;
}

/** A TCP port that accepts and never answers: whoever connects waits. */
async function silentPort(): Promise<number> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  scope.defer(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((r) => server.close(r));
  });
  return (server.address() as net.AddressInfo).port;
}

const WARNING = /rf: warning: .*on the command line may be read by other users/;

describe('secrets on the command line', () => {
  it('are found in a URL’s userinfo and in --token, however written', () => {
    expect(
      commandLineSecrets([
        'listen',
        '--source',
        'redis://:pw@h:1',
        '--target=rediss://u:pw@h:2/0',
        '--token',
        't',
      ]),
    ).toEqual(['--source', '--target', '--token']);
    expect(
      commandLineSecrets(['listen', '--source', 'redis://user@h:1', '--store', 'a:b@c']),
    ).toEqual([]);
  });

  it('rf ship --token: hidden from /proc/<pid>/cmdline while it runs, with a warning', async () => {
    const dir = await tempDir();
    const port = await silentPort();
    const secret = 'tok-5e0b1c-visible';
    const child = spawn(
      process.execPath,
      [
        RF_BIN,
        'ship',
        '--aof-dir',
        dir,
        '--to',
        `http://127.0.0.1:${port}`,
        '--name',
        'cache',
        '--token',
        secret,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise((r) => child.once('close', r));
    scope.defer(async () => {
      child.kill('SIGKILL');
      await exited;
    });
    const cmdline = () => fs.readFile(`/proc/${child.pid}/cmdline`, 'latin1');
    await waitFor(async () => !(await cmdline()).includes(secret), 'the title to hide the token');
    expect(child.exitCode).toBeNull();
    expect((await cmdline()).replace(/\0/g, ' ').trim()).toMatch(/^rf ship/);
    await waitFor(() => WARNING.test(stderr), 'the warning about --token');
    expect(stderr).not.toContain(secret);
  });

  it('a password in --source: a warning, and never the password itself', async () => {
    const dir = await tempDir();
    const res = await rf([
      'listen',
      '--source',
      'redis://:pw-4f1d2a@127.0.0.1:1',
      '--store',
      path.join(dir, 'store'),
      '--connect-timeout',
      '1000',
    ]);
    expect(res.code).toBe(3);
    expect(res.stderr).toMatch(WARNING);
    expect(res.stderr + res.stdout).not.toContain('pw-4f1d2a');
  });

  it('no warning when the secret comes from a file of mode 0600', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'password');
    await fs.writeFile(file, 'pw\n', { mode: 0o600 });
    const res = await rf(['doctor', '--source', 'redis://127.0.0.1:1', '--password-file', file]);
    expect(res.stderr).not.toContain('warning');
  });
});

describe('files and stores others can read', () => {
  it('a secret file of mode 0644 is named with a warning', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'password');
    await fs.writeFile(file, 'pw\n', { mode: 0o644 });
    await fs.chmod(file, 0o644);
    const res = await rf(['doctor', '--source', 'redis://127.0.0.1:1', '--password-file', file]);
    expect(res.stderr).toContain(
      `rf: warning: --password-file ${file} can be read by others (mode 0644)`,
    );
  });

  it('a store directory open to group or others is named with a warning', async () => {
    const dir = await tempDir();
    const store = path.join(dir, 'store');
    await fs.mkdir(store, { mode: 0o755 });
    await fs.chmod(store, 0o755);
    const res = await rf(['info', '--store', store]);
    expect(res.stderr).toContain(`rf: warning: the store ${store} is open to others (mode 0755)`);
  });
});
