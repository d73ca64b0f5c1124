import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { dumpArchive, writesOf } from '../helpers/archive.js';
import { startFakeMaster } from '../helpers/fake-master.js';
import { answerPreflight, cmd, handshake, tinyRdb } from '../helpers/replica-script.js';
import type { RfDaemon } from '../helpers/rf.js';
import { testScope } from '../helpers/scope.js';

/**
 * Protocol cases a real master cannot be made to produce on demand, played by a scripted fake
 * master: split EOF marks, keep-alive newlines, frames byte by byte, silence, retry-later replies.
 */

const REPLID = `${'f'.repeat(39)}1`;
const NEW_REPLID = `${'e'.repeat(39)}2`;
const MARK = 'abcdefghij'.repeat(4);

const scope = testScope();
const { storeDir } = scope;

function listen(port: number, store: string, extra: string[] = []): RfDaemon {
  return scope.daemon([
    '--source',
    `redis://127.0.0.1:${port}`,
    '--store',
    store,
    '--flush-interval',
    '10',
    ...extra,
  ]);
}

describe('rf listen against a scripted fake master', () => {
  it('reads a diskless snapshot whose EOF mark is split across reads, with keep-alives, and the stream bytes glued to the mark', async () => {
    const rdb = tinyRdb();
    const stream = [cmd('SELECT', '0'), cmd('SET', 'k', 'v'), cmd('PING'), cmd('SET', 'k2', 'v2')];
    const master = await startFakeMaster(async (conn) => {
      const first = await conn.readCommand();
      if (await answerPreflight(conn, first)) return;
      expect(await handshake(conn, first)).toEqual(['?', '-1']);
      await conn.write('\n\n');
      await conn.write(`+FULLRESYNC ${REPLID} 1000\r\n`);
      await conn.write('\n\n\n');
      await conn.write(`$EOF:${MARK}\r\n`);
      // The payload, the mark split in the middle, and the first command right behind it.
      const all = Buffer.concat([rdb, Buffer.from(MARK), stream[0]!, stream[1]!]);
      const cut = rdb.length + 17;
      await conn.write(all.subarray(0, cut));
      await new Promise((r) => setTimeout(r, 50));
      await conn.write(all.subarray(cut));
      await conn.expect('REPLCONF', 5_000);
      // A frame delivered one byte per write, then another.
      await conn.writeBytewise(Buffer.concat([stream[2]!, stream[3]!]));
      await conn.closed;
    });
    scope.defer(() => master.close());
    const store = await storeDir();
    const d = listen(master.port, store);
    await d.waitForLog((l) => l.msg === 'first timeline started from the base');
    const total = stream.reduce((n, f) => n + f.length, 0);
    // Wait until the archive holds the whole stream, then stop cleanly.
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      const status = await statusOf(store);
      if (status === 1000 + total) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect((await d.stop()).code).toBe(0);
    expect(master.errors).toEqual([]);

    const dump = await dumpArchive(store);
    expect(dump.timelines[0]).toMatchObject({
      baseOffset: 1000,
      durableOffset: 1000 + total,
      replid: REPLID,
    });
    expect(await readFile(path.join(store, dump.bases[0]!.file))).toEqual(rdb);
    const entries = dump.entries.get(1)!;
    expect(entries.map((e) => e.offset)).toEqual([
      1001,
      1001 + stream[0]!.length,
      1001 + stream[0]!.length + stream[1]!.length,
      1001 + total - stream[3]!.length,
    ]);
    expect(Buffer.concat(entries.map((e) => e.bytes))).toEqual(Buffer.concat(stream));
  });

  it('times out a master that stops answering, with a typed error, and resumes where it was', async () => {
    const rdb = tinyRdb();
    const payload = cmd('SET', 'a', '1');
    const psyncs: string[][] = [];
    const master = await startFakeMaster(async (conn) => {
      const first = await conn.readCommand();
      if (await answerPreflight(conn, first)) return;
      const psync = await handshake(conn, first);
      psyncs.push(psync);
      if (psyncs.length === 1) {
        await conn.write(`+FULLRESYNC ${REPLID} 0\r\n$${rdb.length}\r\n`);
        await conn.write(Buffer.concat([rdb, payload]));
        // Then silence: no PING, no data, connection left open.
        await conn.closed;
      } else {
        await conn.write(`+CONTINUE ${NEW_REPLID}\r\n`);
        await conn.write(cmd('SET', 'b', '2'));
        await conn.closed;
      }
    });
    scope.defer(() => master.close());
    const store = await storeDir();
    const d = listen(master.port, store, ['--repl-timeout', '1500']);
    const lost = await d.waitForLog(
      (l) => l.msg === 'replication connection lost; resuming',
      15_000,
    );
    expect((lost.error as { code: string }).code).toBe('RF_TIMEOUT');
    await d.waitForLog((l) => l.msg.startsWith('partial resync accepted'), 15_000);
    await d.waitForLog((l) => l.msg === 'master switched replid; timeline continues', 5_000);
    await new Promise((r) => setTimeout(r, 300));
    expect((await d.stop()).code).toBe(0);
    expect(psyncs).toEqual([
      ['?', '-1'],
      [REPLID, String(payload.length + 1)],
    ]);

    const dump = await dumpArchive(store);
    expect(dump.timelines).toHaveLength(1);
    expect(dump.timelines[0]!.replid).toBe(NEW_REPLID);
    expect(dump.timelines[0]!.replids.map((r) => r.replid)).toEqual([REPLID, NEW_REPLID]);
    expect(writesOf(dump.entries.get(1)!)).toEqual([
      ['SET', 'a', '1'],
      ['SET', 'b', '2'],
    ]);
  });

  it('keeps the commands before a malformed byte, reports RF_PROTOCOL and resumes right after them', async () => {
    const rdb = tinyRdb();
    const good = Buffer.concat([cmd('SET', 'a', '1'), cmd('SET', 'b', '2')]);
    const psyncs: string[][] = [];
    const master = await startFakeMaster(async (conn) => {
      const first = await conn.readCommand();
      if (await answerPreflight(conn, first)) return;
      psyncs.push(await handshake(conn, first));
      if (psyncs.length === 1) {
        await conn.write(`+FULLRESYNC ${REPLID} 0\r\n$${rdb.length}\r\n`);
        // Two good commands and a simple-string reply, which no stream carries, in one write.
        await conn.write(Buffer.concat([rdb, good, Buffer.from('+OK\r\n')]));
        await conn.closed;
      } else {
        await conn.write('+CONTINUE\r\n');
        await conn.write(cmd('SET', 'c', '3'));
        await conn.closed;
      }
    });
    scope.defer(() => master.close());
    const store = await storeDir();
    const d = listen(master.port, store);
    const lost = await d.waitForLog(
      (l) => l.msg === 'replication connection lost; resuming',
      15_000,
    );
    expect((lost.error as { code: string }).code).toBe('RF_PROTOCOL');
    await d.waitForLog((l) => l.msg.startsWith('partial resync accepted'), 15_000);
    await new Promise((r) => setTimeout(r, 300));
    expect((await d.stop()).code).toBe(0);
    expect(psyncs).toEqual([
      ['?', '-1'],
      [REPLID, String(good.length + 1)],
    ]);
    const dump = await dumpArchive(store);
    expect(dump.timelines).toHaveLength(1);
    expect(writesOf(dump.entries.get(1)!)).toEqual([
      ['SET', 'a', '1'],
      ['SET', 'b', '2'],
      ['SET', 'c', '3'],
    ]);
  });

  it('retries with backoff while the master answers -LOADING', async () => {
    const rdb = tinyRdb();
    let attempts = 0;
    const master = await startFakeMaster(async (conn) => {
      const first = await conn.readCommand();
      if (await answerPreflight(conn, first)) return;
      await handshake(conn, first);
      attempts++;
      if (attempts < 3) {
        await conn.write('-LOADING Redis is loading the dataset in memory\r\n');
        return;
      }
      await conn.write(`+FULLRESYNC ${REPLID} 0\r\n$${rdb.length}\r\n`);
      await conn.write(rdb);
      await conn.closed;
    });
    scope.defer(() => master.close());
    const store = await storeDir();
    const d = listen(master.port, store);
    await d.waitForLog((l) => l.msg === 'first timeline started from the base', 20_000);
    expect(attempts).toBe(3);
    const retries = d.lines.filter((l) => l.msg === 'replication connection lost; resuming');
    expect(retries.map((l) => (l.error as { code: string }).code)).toEqual([
      'RF_MASTER_ERROR',
      'RF_MASTER_ERROR',
    ]);
    expect((await d.stop()).code).toBe(0);
  });

  it('refuses a snapshot whose CRC64 does not match, and keeps no base from it', async () => {
    const bad = tinyRdb();
    bad[bad.length - 1]! ^= 0xff;
    const master = await startFakeMaster(async (conn) => {
      const first = await conn.readCommand();
      if (await answerPreflight(conn, first)) return;
      await handshake(conn, first);
      await conn.write(`+FULLRESYNC ${REPLID} 0\r\n$${bad.length}\r\n`);
      await conn.write(bad);
      await conn.closed;
    });
    scope.defer(() => master.close());
    const store = await storeDir();
    const d = listen(master.port, store);
    const { code } = await d.exited();
    expect(code).toBe(4);
    expect(d.output).toContain('RF_CHECKSUM');
    const { readdir } = await import('node:fs/promises');
    expect(await readdir(path.join(store, 'tmp'))).toEqual([]);
    expect(await readdir(path.join(store, 'bases'))).toEqual([]);
  });
});

/** The durable offset the store holds, read through the running daemon. */
async function statusOf(store: string): Promise<number | null> {
  const { openReader } = await import('../../src/daemon/open-reader.js');
  const { Archive } = await import('../../src/store/archive.js');
  const kv = await openReader(store);
  try {
    return (await new Archive(kv).state('default'))?.durableOffset ?? null;
  } finally {
    await kv.close();
  }
}
