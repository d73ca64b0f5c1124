import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RedisClient } from '../../src/resp/client.js';
import { replicationInfo, waitFor } from '../helpers/load.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import { RfDaemon, rf } from '../helpers/rf.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

/**
 * Millisecond bounds: a writer sets ctr:<i> every ~10 ms with its send time as the value. After
 * `--until T` exactly the keys whose archived time (what `rf log` shows) is at or before T exist:
 * none sent after T, and every one rf stamped by T. How far a stamp trails the send (the capture
 * latency, a few ms on loopback, more on a loaded machine) is measured by the bench, not here.
 */

let master: RedisServer;
let client: RedisClient;
let work: string;
let store: string;
let daemon: RfDaemon;
const sent: number[] = [];

beforeAll(async () => {
  master = await startRedis({ args: ['--repl-diskless-sync-delay', '0'] });
  client = await master.client();
  work = await makeTempDir('rf-bounds-');
  store = path.join(work, 'store');
  daemon = RfDaemon.start(['--source', master.url, '--store', store, '--flush-interval', '20']);
  await daemon.waitForLog((l) => l.msg === 'first timeline started from the base');
  for (let i = 0; i < 200; i++) {
    const now = Date.now();
    await client.call('SET', `ctr:${i}`, String(now));
    sent.push(now);
    await new Promise((r) => setTimeout(r, 10));
  }
  await waitFor(async () => {
    const info = await replicationInfo(client);
    return info.replicas[0]?.offset === info.masterOffset;
  }, 'rf to catch up');
}, 60_000);

afterAll(async () => {
  await daemon?.stop();
  await master?.stop();
  if (work) await removeTempDir(work);
});

describe('rf restore --until is exact to the millisecond', () => {
  it('holds exactly the keys written at or before T, for T across the load', async () => {
    const log = await rf(['log', '--store', store, '--key', 'ctr:*', '--json']);
    expect(log.code, log.stderr).toBe(0);
    const stamped = new Map<number, number>();
    for (const line of log.stdout.trim().split('\n')) {
      const w = JSON.parse(line) as { args: string[]; time: string };
      stamped.set(Number(w.args[0]!.slice('ctr:'.length)), Date.parse(w.time));
    }
    expect(stamped.size).toBe(sent.length);
    // Never stamped before the client sent it: the same clock, and a write runs after it is sent.
    for (const [i, at] of stamped) expect(at, `ctr:${i}`).toBeGreaterThanOrEqual(sent[i]!);
    const first = sent[0]!;
    const last = sent[sent.length - 1]!;
    const targets = [0.1, 0.37, 0.5, 0.81].map((f) => Math.round(first + (last - first) * f));
    for (const t of targets) {
      const out = path.join(work, `out-${t}`);
      const res = await rf(['restore', '--store', store, '--until', `@${t / 1000}`, '--out', out]);
      expect(res.code, res.stderr).toBe(0);
      const booted = await startRedis({ dir: out, args: ['--appendonly', 'yes'] });
      try {
        const c = await booted.client();
        const present = new Set<number>();
        for (let i = 0; i < sent.length; i++) {
          if ((await c.call('EXISTS', `ctr:${i}`)) === 1) present.add(i);
        }
        // No holes: what is there is a prefix of what was sent.
        const count = present.size;
        for (let i = 0; i < count; i++)
          expect(present.has(i), `ctr:${i} missing before ctr:${count - 1}`).toBe(true);
        for (let i = 0; i < sent.length; i++) {
          const at = stamped.get(i)!;
          expect(present.has(i), `ctr:${i} archived at ${at - t} ms from T`).toBe(at <= t);
        }
      } finally {
        await booted.stop();
      }
    }
  });
});
