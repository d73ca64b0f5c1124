import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeMaster, startFakeMaster } from '../helpers/fake-master.js';
import { startRedis } from '../helpers/redis.js';
import { lacks } from '../helpers/redis-bin.js';
import { answerPreflight, cmd, handshake, tinyRdb } from '../helpers/replica-script.js';
import { RfDaemon, rf } from '../helpers/rf.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

/**
 * Transactions at the cut. A real master writes MULTI … EXEC in one go, so a target time
 * between them, or an archive that ends inside one, needs a scripted master that pauses there.
 */
const REPLID = `${'c'.repeat(39)}3`;
interface RestoreSummary {
  droppedTransaction: { reason: string; commands: number } | null;
  lastWrite: { command: string } | null;
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

let master: FakeMaster;
let work: string;
let store: string;
const at: Record<string, number> = {};

beforeAll(async () => {
  const rdb = tinyRdb();
  master = await startFakeMaster(async (conn) => {
    const first = await conn.readCommand();
    if (await answerPreflight(conn, first)) return;
    await handshake(conn, first);
    await conn.write(`+FULLRESYNC ${REPLID} 0\r\n$${rdb.length}\r\n`);
    await conn.write(rdb);
    await pause(200);
    await conn.write(Buffer.concat([cmd('SELECT', '0'), cmd('SET', 'a', '1')]));
    at.a = Date.now();
    await pause(300);
    await conn.write(Buffer.concat([cmd('MULTI'), cmd('SET', 'b', '2')]));
    at.multi = Date.now();
    await pause(300);
    await conn.write(Buffer.concat([cmd('SELECT', '1'), cmd('SET', 'c', '3'), cmd('EXEC')]));
    at.exec = Date.now();
    await pause(300);
    await conn.write(Buffer.concat([cmd('SET', 'd', '4'), cmd('MULTI'), cmd('SET', 'e', '5')]));
    at.open = Date.now();
    await conn.closed;
  });
  work = await makeTempDir('rf-txn-');
  store = path.join(work, 'store');
  const d = RfDaemon.start([
    '--source',
    `redis://127.0.0.1:${master.port}`,
    '--store',
    store,
    '--flush-interval',
    '10',
  ]);
  await d.waitForLog((l) => l.msg === 'first timeline started from the base');
  while (at.open === undefined) await pause(50);
  await pause(300);
  expect((await d.stop()).code).toBe(0);
}, 30_000);

afterAll(async () => {
  await master?.close();
  if (work) await removeTempDir(work);
});

async function restoreKeys(
  until: string,
  name: string,
): Promise<{ keys: Record<number, string[]>; summary: RestoreSummary }> {
  const out = path.join(work, name);
  const res = await rf(['restore', '--store', store, '--until', until, '--out', out, '--json']);
  expect(res.code, res.stderr).toBe(0);
  const booted = await startRedis({ dir: out, args: ['--appendonly', 'yes'] });
  try {
    const c = await booted.client();
    const keys: Record<number, string[]> = {};
    for (const db of [0, 1]) {
      await c.call('SELECT', String(db));
      keys[db] = ((await c.call('KEYS', '*')) as string[]).sort();
    }
    return { keys, summary: JSON.parse(res.stdout) as RestoreSummary };
  } finally {
    await booted.stop();
  }
}

// The scripted master's base is RDB 10 (Redis 7.0), which a Redis 6 under test cannot boot.
describe.skipIf(lacks('RDB 10'))('rf restore never splits a transaction', () => {
  it('a T between MULTI and EXEC cuts before the MULTI and reports the transaction dropped', async () => {
    const { keys, summary } = await restoreKeys(`@${(at.multi! + 100) / 1000}`, 'inside');
    expect(keys).toEqual({ 0: ['a'], 1: [] });
    expect(summary.droppedTransaction).toMatchObject({
      reason: 'target-inside-transaction',
      commands: 1,
    });
    expect(summary.lastWrite?.command).toBe('set');
  });

  it('a T after EXEC applies the whole transaction, SELECT inside it included', async () => {
    const { keys, summary } = await restoreKeys(`@${(at.exec! + 100) / 1000}`, 'after');
    expect(keys).toEqual({ 0: ['a', 'b'], 1: ['c'] });
    expect(summary.droppedTransaction).toBeNull();
    expect(summary.lastWrite?.command).toBe('exec');
  });

  it('a transaction still open at the end of the archive is dropped and reported', async () => {
    const { keys, summary } = await restoreKeys('latest', 'latest');
    // d was written after the SELECT 1 inside the committed transaction.
    expect(keys).toEqual({ 0: ['a', 'b'], 1: ['c', 'd'] });
    expect(summary.droppedTransaction).toMatchObject({
      reason: 'open-at-archive-end',
      commands: 1,
    });
  });
});
