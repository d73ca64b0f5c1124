import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RedisClient } from '../../src/resp/client.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import { hasFeature, serverBuild } from '../helpers/redis-bin.js';
import { RfDaemon, rf } from '../helpers/rf.js';
import { caughtUp } from '../helpers/scope.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

/**
 * "Who changed this key, and when?" answered by the real CLI over what rf listen captured from a
 * real redis-server, while rf listen runs: the resolved window first, then one line per write.
 */

let master: RedisServer;
let client: RedisClient;
let work: string;
let store: string;
let daemon: RfDaemon;
/** Wall-clock instants around the writes to user:42, to bound windows with. */
let before: string;
let middle: string;
let after: string;

/** Time (UTC, or in --tz with its offset), db, timeline, offset, the command as redis-cli quotes it. */
const LINE =
  /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(?:Z|[+-]\d\d:\d\d)) {2}db (\d+) {2}tl 1 {2}offset (\d+) {2}(.*)$/;

const pause = () => new Promise((r) => setTimeout(r, 20));

beforeAll(async () => {
  master = await startRedis({ args: ['--repl-diskless-sync-delay', '0'] });
  client = await master.client();
  work = await makeTempDir('rf-log-e2e-');
  store = path.join(work, 'store');
  daemon = RfDaemon.start(['--source', master.url, '--store', store, '--flush-interval', '20']);
  await daemon.waitForLog((l) => l.msg === 'first timeline started from the base');
  for (let i = 0; i < 500; i++) await client.call('SET', `noise:${i}`, 'x');
  await caughtUp(master);
  await pause();
  before = new Date().toISOString();
  await pause();
  await client.call('SET', 'user:42', 'ann');
  await client.call('HSET', 'user:42:profile', 'city', 'Paris');
  await caughtUp(master);
  await pause();
  middle = new Date().toISOString();
  await pause();
  await client.call('SELECT', '2');
  await client.call('SET', 'user:42', 'in db 2', 'EX', '3600');
  await client.call('SELECT', '0');
  await client.call('DEL', 'user:42');
  for (let i = 500; i < 1000; i++) await client.call('SET', `noise:${i}`, 'x');
  await caughtUp(master);
  await pause();
  after = new Date().toISOString();
}, 60_000);

afterAll(async () => {
  await daemon?.stop();
  await master?.stop();
  if (work) await removeTempDir(work);
});

describe('rf log', () => {
  it('--key finds every write to one key, one line each: time, db, offset, command', async () => {
    const res = await rf(['log', '--store', store, '--key', 'user:42']);
    expect(res.code, res.stderr).toBe(0);
    const lines = res.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(3);
    const parsed = lines.map((l) => LINE.exec(l));
    expect(parsed.every((m) => m !== null)).toBe(true);
    expect(parsed.map((m) => [m![2], m![4]])).toEqual([
      ['0', 'SET "user:42" "ann"'],
      // The stream carries EX as an absolute PXAT (REDIS-FACTS.md); Redis 6 as a relative PX.
      [
        '2',
        hasFeature('absolute expiries in the stream')
          ? expect.stringMatching(/^SET "user:42" "in db 2" "PXAT" "\d{13}"$/)
          : 'SET "user:42" "in db 2" "PX" "3600000"',
      ],
      ['0', 'DEL "user:42"'],
    ]);
    const offsets = parsed.map((m) => Number(m![3]));
    expect(offsets).toEqual([...offsets].sort((a, b) => a - b));
    expect(Date.parse(parsed[0]![1]!)).toBeGreaterThan(Date.parse(before));
    expect(res.stderr.split('\n').slice(0, 2)).toEqual([
      'since the first write archived',
      'until the last write archived',
    ]);
  });

  it('prints the window it resolved before anything else, and keeps to it', async () => {
    const res = await rf([
      'log',
      '--store',
      store,
      '--since',
      before,
      '--until',
      middle,
      '--tz',
      'UTC',
    ]);
    expect(res.code, res.stderr).toBe(0);
    const { flavor, version } = serverBuild();
    expect(res.stderr.split('\n').slice(0, 3)).toEqual([
      `since ${before} (${before.replace('Z', '+00:00')} UTC)`,
      `until ${middle} (${middle.replace('Z', '+00:00')} UTC)`,
      // The server the writes came from, as rf listen recorded it.
      `source default: ${flavor} ${version}`,
    ]);
    expect(
      res.stdout
        .trimEnd()
        .split('\n')
        .map((l) => LINE.exec(l)?.[4]),
    ).toEqual(['SET "user:42" "ann"', 'HSET "user:42:profile" "city" "Paris"']);
  });

  it('--json: one object per line, with the fields a program needs', async () => {
    const res = await rf([
      'log',
      '--store',
      store,
      '--since',
      middle,
      '--until',
      after,
      '--key',
      'user:*',
      '--json',
    ]);
    expect(res.code, res.stderr).toBe(0);
    const records = res.stdout
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(records.map((r) => [r.db, r.command, r.args[0]])).toEqual([
      [2, 'SET', 'user:42'],
      [0, 'DEL', 'user:42'],
    ]);
    for (const r of records) {
      expect(r).toMatchObject({ source: 'default', timeline: 1, multiAt: null });
      expect(r.time).toMatch(/Z$/);
      expect(r.offset).toBeGreaterThan(0);
    }
  });

  it('--db and --command narrow it down', async () => {
    const db2 = await rf(['log', '--store', store, '--db', '2']);
    expect(db2.stdout.trimEnd().split('\n')).toHaveLength(1);
    const dels = await rf(['log', '--store', store, '--command', 'del', '--json']);
    expect(
      dels.stdout
        .trimEnd()
        .split('\n')
        .map((l) => JSON.parse(l).args),
    ).toEqual([['user:42']]);
  });

  it('refuses bad input with a clear code', async () => {
    const db = await rf(['log', '--store', store, '--db', 'two']);
    expect(db.code).toBe(2);
    expect(db.stderr).toContain('RF_USAGE');
    const time = await rf(['log', '--store', store, '--since', 'yesterday']);
    expect(time.code).toBe(2);
    expect(time.stderr).toContain('RF_BAD_TIME');
    const order = await rf(['log', '--store', store, '--since', after, '--until', before]);
    expect(order.code).toBe(2);
    expect(order.stderr).toContain('is after --until');
    const name = await rf(['log', '--store', store, '--name', 'nope']);
    expect(name.code).toBe(2);
    expect(name.stderr).toContain('RF_UNKNOWN_SOURCE');
  });
});
