import { expect } from 'vitest';
import { encodeCommand } from '../../src/resp/encode.js';
import { emptyRdb } from '../../src/restore/base-file.js';
import type { FakeConn } from './fake-master.js';

/** Scripts for a fake master talking to rf's replica side. */

/** The smallest valid RDB: header, EOF opcode, CRC64 of both (src/rdb.c rdbSaveRio). */
export const tinyRdb = emptyRdb;

export const cmd = (...a: string[]) => encodeCommand(a);

/** Answers the daemon's preflight connection (ROLE) as a master would. */
/**
 * Answers rf's command connections (the preflight's ROLE, the offset sampler's CLIENT SETNAME
 * and INFO) as a master would, until they close. Returns false for a replication connection,
 * whose first command is PING.
 */
export async function answerPreflight(
  conn: FakeConn,
  first: string[],
  /** INFO lines the fake master adds, e.g. 'redis_version:6.2.16\r\n' for INFO server. */
  extraInfo = '',
): Promise<boolean> {
  if (first[0]?.toUpperCase() === 'PING') return false;
  let command: string[] | null = first;
  while (command !== null) {
    const name = command[0]?.toUpperCase();
    if (name === 'ROLE') await conn.write('*3\r\n$6\r\nmaster\r\n:0\r\n*0\r\n');
    else if (name === 'INFO') {
      // A replid no timeline has: the sampler's figures never count as proof of completeness.
      const text =
        'role:master\r\nmaster_replid:0000000000000000000000000000000000000000\r\nmaster_repl_offset:0\r\n' +
        extraInfo;
      await conn.write(`$${text.length}\r\n${text}\r\n`);
    } else await conn.write('+OK\r\n');
    command = await conn.readCommand(60_000).catch(() => null);
  }
  return true;
}

export async function handshake(conn: FakeConn, first: string[]): Promise<string[]> {
  expect(first[0]?.toUpperCase()).toBe('PING');
  await conn.write('+PONG\r\n');
  await conn.expect('REPLCONF');
  await conn.write('+OK\r\n');
  const capa = await conn.expect('REPLCONF');
  expect(capa).toEqual(['capa', 'eof', 'capa', 'psync2']);
  await conn.write('+OK\r\n');
  // Anything else before PSYNC (REPLCONF version, for Valkey) is answered as a master would.
  for (;;) {
    const next = await conn.readCommand();
    if (next[0]?.toUpperCase() === 'PSYNC') return next.slice(1);
    await conn.write('+OK\r\n');
  }
}
