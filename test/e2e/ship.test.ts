import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WriteLoad } from '../helpers/load.js';
import { freePort, type RedisServer, startRedis } from '../helpers/redis.js';
import { aofTimestampArgs } from '../helpers/redis-bin.js';
import { aofCaughtUp, RF_BIN, RfDaemon, rf } from '../helpers/rf.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

/** rf ship on the Redis host pushing to rf listen --ingest on the backup host, through the real CLI. */
let master: RedisServer;
let work: string;
const TOKEN = 'ship-e2e-token-7f3a';

beforeAll(async () => {
  master = await startRedis({
    args: ['--repl-diskless-sync-delay', '0', '--appendonly', 'yes', ...aofTimestampArgs()],
  });
  work = await makeTempDir('rf-ship-');
});
const afterTest: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of afterTest.splice(0)) await c();
});
afterAll(async () => {
  await master?.stop();
  if (work) await removeTempDir(work);
});

describe('rf ship → rf listen --ingest', () => {
  it('ships every AOF byte under a write load, and keeps the token out of every output', async () => {
    const tokenFile = path.join(work, 'token');
    await writeFile(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
    const store = path.join(work, 'store');
    const port = await freePort();
    const listener = RfDaemon.start([
      '--source',
      master.url,
      '--store',
      store,
      '--ingest',
      `127.0.0.1:${port}`,
      '--ingest-token-file',
      tokenFile,
    ]);
    try {
      await listener.waitForLog((l) => l.msg === 'first timeline started from the base');
      const ship = spawn(
        process.execPath,
        [
          RF_BIN,
          'ship',
          '--aof-dir',
          master.dir,
          '--to',
          `http://127.0.0.1:${port}`,
          '--token-file',
          tokenFile,
          '--name',
          'default',
          '--chunk-size',
          '4k',
          '--chunk-pause',
          '10ms',
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      // Whatever fails below, no shipper outlives the test.
      const shipExit = new Promise<number | null>((resolve) => ship.on('close', resolve));
      afterTest.push(async () => {
        if (ship.exitCode === null && ship.signalCode === null) ship.kill('SIGKILL');
        await shipExit;
      });
      let shipOut = '';
      ship.stdout.on('data', (d: Buffer) => (shipOut += d.toString()));
      ship.stderr.on('data', (d: Buffer) => (shipOut += d.toString()));
      const load = new WriteLoad(await master.client());
      load.start();
      await new Promise((r) => setTimeout(r, 1500));
      await load.stop();
      await aofCaughtUp(store, master.dir);
      ship.kill('SIGTERM');
      const code = await shipExit;
      expect(code, shipOut).toBe(0);
      expect(shipOut).not.toContain(TOKEN);
      expect(listener.output).not.toContain(TOKEN);
    } finally {
      expect((await listener.stop()).code).toBe(0);
    }
  });

  it('rf ship without --to, and with a token the receiver does not know, fail clearly', async () => {
    const noTo = await rf(['ship', '--aof-dir', master.dir, '--token', 'x']);
    expect(noTo.code).toBe(2);
    const port = await freePort();
    const store = path.join(work, 'store2');
    const tokenFile = path.join(work, 'token2');
    await writeFile(tokenFile, 'right-token\n');
    const listener = RfDaemon.start([
      '--source',
      master.url,
      '--store',
      store,
      '--ingest',
      `127.0.0.1:${port}`,
      '--ingest-token-file',
      tokenFile,
    ]);
    try {
      await listener.waitForLog((l) => l.msg === 'first timeline started from the base');
      const res = await rf(
        [
          'ship',
          '--aof-dir',
          master.dir,
          '--to',
          `http://127.0.0.1:${port}`,
          '--token',
          'wrong-token',
        ],
        { timeoutMs: 30_000 },
      );
      expect(res.code).toBe(3);
      expect(res.stderr).toContain('RF_AUTH');
      expect(`${res.stdout}${res.stderr}`).not.toContain('wrong-token');
    } finally {
      await listener.stop();
    }
  });

  it('rf ship -h and rf doctor -h show examples', async () => {
    for (const cmd of ['ship', 'doctor']) {
      const res = await rf([cmd, '-h']);
      expect(res.code).toBe(0);
      expect(res.stdout).toContain('Examples:');
    }
  });
});
