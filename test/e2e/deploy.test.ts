import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { freePort } from '../helpers/redis.js';
import { type RfDaemon, rf } from '../helpers/rf.js';
import { testScope } from '../helpers/scope.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

/**
 * The shipped rf.example.yaml and systemd unit, run as shipped: only the paths and ports a test
 * machine needs are changed, so a form the example uses (redis://rf@host with password-file)
 * that rf refuses fails here.
 */
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const scope = testScope();

/** The unit's `ExecStart=/usr/bin/env rf listen …`, as rf's arguments. */
async function unitArgs(): Promise<string[]> {
  const unit = await readFile(path.join(root, 'deploy/rf-listen.service'), 'utf8');
  const exec = /^ExecStart=(.*)$/m.exec(unit)?.[1];
  if (exec === undefined) throw new Error('rf-listen.service has no ExecStart');
  const words = exec.trim().split(/\s+/);
  const at = words.indexOf('rf');
  expect(at, `ExecStart runs rf: ${exec}`).toBeGreaterThanOrEqual(0);
  return words.slice(at + 1);
}

/** Environment= lines of the unit. */
async function unitEnv(): Promise<Record<string, string>> {
  const unit = await readFile(path.join(root, 'deploy/rf-listen.service'), 'utf8');
  return Object.fromEntries(
    [...unit.matchAll(/^Environment=([A-Z_]+)=(.*)$/gm)].map((m) => [m[1]!, m[2]!]),
  );
}

describe('the shipped configuration starts rf listen', () => {
  it('rf.example.yaml with its password-file, run by the unit’s command line', async () => {
    const master = await scope.master(['--appendonly', 'no']);
    const admin = await master.client();
    await admin.call('ACL', 'SETUSER', 'rf', 'on', '>deploy-secret', '~*', '&*', '+@all');
    const work = await makeTempDir('rf-deploy-');
    scope.defer(() => removeTempDir(work));
    const metricsPort = await freePort();
    const example = await readFile(path.join(root, 'rf.example.yaml'), 'utf8');
    // The example names /var/lib/rf, /etc/rf/password, 127.0.0.1:6379 and a metrics port.
    for (const expected of ['/var/lib/rf', '/etc/rf/password', 'redis://rf@127.0.0.1:6379'])
      expect(example).toContain(expected);
    const config = example
      .replaceAll('/var/lib/rf', path.join(work, 'store'))
      .replaceAll('/etc/rf/password', path.join(work, 'password'))
      .replaceAll('127.0.0.1:6379', `127.0.0.1:${master.port}`)
      .replace(/metrics: .*/, `metrics: 127.0.0.1:${metricsPort}`);
    await writeFile(path.join(work, 'rf.yaml'), config);
    await writeFile(path.join(work, 'password'), 'deploy-secret\n', { mode: 0o600 });
    const env = await unitEnv();
    expect(env.RF_CONFIG).toBe('/etc/rf/rf.yaml');
    const args = await unitArgs();
    expect(args[0]).toBe('listen');
    const d = scope.daemon(args.slice(1), {
      ...env,
      RF_CONFIG: path.join(work, 'rf.yaml'),
      RF_STORE: undefined,
      RF_SOURCE: undefined,
      REDIS_URL: undefined,
      RF_PASSWORD: undefined,
    });
    await d.waitForLog((l) => l.msg === 'first timeline started from the base');
    const metrics = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).toMatch(/^rf_connected 1$/m);
    expect((await d.stop()).code).toBe(0);
    expect(d.output).not.toContain('deploy-secret');
    const info = await rf(['info', '--json', '--store', path.join(work, 'store')]);
    expect(JSON.parse(info.stdout).sources[0].name).toBe('default');
  });

  it('redis://user@host with --password-file logs in as that user', async () => {
    const master = await scope.master();
    const admin = await master.client();
    await admin.call('ACL', 'SETUSER', 'rf', 'on', '>file-secret', '~*', '&*', '+@all');
    const work = await makeTempDir('rf-deploy-');
    scope.defer(() => removeTempDir(work));
    await writeFile(path.join(work, 'password'), 'file-secret\n', { mode: 0o600 });
    const store = path.join(work, 'store');
    const d: RfDaemon = scope.daemon(
      [
        '--source',
        `redis://rf@127.0.0.1:${master.port}`,
        '--password-file',
        path.join(work, 'password'),
        '--store',
        store,
      ],
      { RF_PASSWORD: undefined },
    );
    await d.waitForLog((l) => l.msg === 'first timeline started from the base');
    const clients = String(await admin.call('CLIENT', 'LIST'));
    expect(clients).toMatch(/cmd=(psync|replconf)\S* user=rf /);
    expect((await d.stop()).code).toBe(0);
  });
});
