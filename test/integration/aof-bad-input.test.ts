import { spawnSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { startAofCapture } from '../../src/aof/index.js';
import { locateAof } from '../../src/aof/layout.js';
import { run as ship } from '../../src/cli/ship.js';
import { isRfError, type RfError } from '../../src/errors.js';
import { Store } from '../../src/store/store.js';
import { quiet } from '../helpers/aof.js';
import { startRedis } from '../helpers/redis.js';
import { testScope } from '../helpers/scope.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

const scope = testScope();

async function tempDir(): Promise<string> {
  const dir = await makeTempDir();
  scope.defer(() => removeTempDir(dir));
  return dir;
}

async function store(): Promise<Store> {
  const s = await Store.open(await tempDir(), { create: true });
  scope.defer(() => s.close());
  return s;
}

async function failure(p: Promise<unknown>): Promise<RfError> {
  try {
    await p;
  } catch (err) {
    if (isRfError(err)) return err;
    throw err;
  }
  throw new Error('expected a failure');
}

const quietShip = {
  to: 'http://127.0.0.1:9',
  name: 'x',
  token: 't',
  chunkSize: 1024 * 1024,
  chunkPause: 0,
  rewriteTimeout: 60_000,
  logLevel: 'silent',
  json: true,
};

describe('rf AOF capture refuses bad input with a clear error', () => {
  it('an AOF directory that does not exist: RF_AOF_DIR, exit 3, pointing to rf doctor', async () => {
    const missing = path.join(await tempDir(), 'nope');
    const err = await failure(
      startAofCapture({ store: await store(), source: 's', aofDir: missing, log: quiet }),
    );
    expect(err.code).toBe('RF_AOF_DIR');
    expect(err.exitCode).toBe(3);
    expect(err.message).toContain('does not exist');
    expect(err.hint).toContain('rf doctor');
    expect(await ship({ ...quietShip, aofDir: missing })).toBe(3);
  });

  it('a directory without an AOF in it: RF_AOF_DIR naming what was looked for', async () => {
    const dir = await tempDir();
    writeFileSync(path.join(dir, 'dump.rdb'), 'REDIS0010');
    const err = await failure(locateAof(dir));
    expect(err.code).toBe('RF_AOF_DIR');
    expect(err.message).toMatch(/manifest.*appendonly\.aof/);
    expect(err.details.found).toEqual(['dump.rdb']);
  });

  it('an AOF directory this user cannot read: RF_AOF_DIR saying so', async () => {
    const parent = await tempDir();
    chmodSync(parent, 0o755);
    const dir = path.join(parent, 'appendonlydir');
    mkdirSync(dir);
    writeFileSync(
      path.join(dir, 'appendonly.aof.manifest'),
      'file appendonly.aof.1.incr.aof seq 1 type i\n',
    );
    chmodSync(dir, 0o000);
    scope.defer(async () => chmodSync(dir, 0o755));
    let result: { code: string; message: string };
    if (process.getuid?.() === 0) {
      // root reads anything: ask as nobody, through the built module. Nobody may not be able
      // to read the clone (a checkout under a 0700 directory), so the module is copied beside
      // the AOF directory first, into a directory nobody can read.
      const dist = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../dist');
      if (!existsSync(path.join(dist, 'aof/layout.js')))
        throw new Error(`${dist} is missing: run \`npm run build\` (npm test does it first)`);
      const copy = path.join(parent, 'dist');
      cpSync(dist, copy, { recursive: true, filter: (src) => !src.endsWith('.map') });
      const layout = path.join(copy, 'aof/layout.js');
      const script = `import(${JSON.stringify(layout)}).then((m) => m.locateAof(${JSON.stringify(dir)})).then(() => console.log('{}'), (e) => console.log(JSON.stringify({ code: e.code, message: e.message })))`;
      const child = spawnSync(process.execPath, ['-e', script], {
        uid: 65534,
        gid: 65534,
        cwd: parent,
        encoding: 'utf8',
      });
      expect(child.stderr).toBe('');
      result = JSON.parse(child.stdout);
    } else {
      const err = await failure(locateAof(dir));
      result = { code: err.code, message: err.message };
    }
    expect(result.code).toBe('RF_AOF_DIR');
    expect(result.message).toContain('not readable');
  });

  it('a malformed manifest: RF_AOF_MANIFEST, exit 4, with the line', async () => {
    const dir = await tempDir();
    writeFileSync(
      path.join(dir, 'appendonly.aof.manifest'),
      'file appendonly.aof.1.base.rdb seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1\n',
    );
    const err = await failure(
      startAofCapture({ store: await store(), source: 's', aofDir: dir, log: quiet }),
    );
    expect(err.code).toBe('RF_AOF_MANIFEST');
    expect(err.exitCode).toBe(4);
    expect(err.details.line).toBe(2);
    expect(await ship({ ...quietShip, aofDir: dir })).toBe(4);
  });

  it('a Redis with appendonly off: RF_AOF_OFF, exit 2, pointing to rf doctor --fix', async () => {
    const redis = await startRedis();
    scope.defer(() => redis.stop());
    const err = await failure(
      startAofCapture({
        store: await store(),
        source: 's',
        aofDir: redis.dir,
        redis: {
          endpoint: { host: redis.host, port: redis.port, db: 0, tls: false },
          url: redis.url,
        },
        log: quiet,
      }),
    );
    expect(err.code).toBe('RF_AOF_OFF');
    expect(err.exitCode).toBe(2);
    expect(err.hint).toContain(`rf doctor --source ${redis.url} --fix`);
    expect(await ship({ ...quietShip, aofDir: redis.dir, source: redis.url })).toBe(2);
  });

  it('bad flags for rf ship are usage errors (exit 2)', async () => {
    const dir = await tempDir();
    expect(await ship({ ...quietShip, aofDir: dir, token: undefined, env: {} })).toBe(2);
    expect(await ship({ ...quietShip, aofDir: dir, to: 'ftp://host:1' })).toBe(2);
    expect(await ship({ ...quietShip, aofDir: dir, rewriteAt: '03:30' })).toBe(2);
  });
});
