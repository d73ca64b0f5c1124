import { expect } from 'vitest';
import type { RedisClient } from '../../src/resp/client.js';
import { WriteLoad } from './load.js';
import { startRedis } from './redis.js';
import { rf } from './rf.js';

/**
 * Counter keys that carry their send time: `SET ctr:<i><suffix> <ms><payload>` at a steady pace,
 * one at a time, so the i-th key's send time is known to the millisecond. What a restore at T
 * holds can then be checked against when each key was sent. A suffix such as `:{t}` keeps every
 * key in one cluster slot.
 */
export class StampedCounter extends WriteLoad {
  readonly sentAt: number[] = [];

  constructor(
    client: RedisClient,
    pauseMs = 5,
    private readonly payload = '',
    private readonly suffix = '',
  ) {
    super(client, 1, pauseMs);
  }

  protected override step(): Promise<unknown> {
    const i = this.sent++;
    const now = Date.now();
    this.sentAt.push(now);
    return this.client.call('SET', `ctr:${i}${this.suffix}`, `${now}${this.payload}`);
  }

  override async stop(): Promise<number> {
    const count = await super.stop();
    expect(this.errors).toEqual([]);
    return count;
  }
}

export interface StoredCounter {
  time: number;
  late: { from: number; until: number } | null;
}

/**
 * Each counter key's stored time and late mark, as `rf log --json` gives them (of the source, or
 * the cluster, called `name` when the store holds more than one).
 */
export async function storedCounters(
  store: string,
  name?: string,
): Promise<Map<number, StoredCounter>> {
  const named = name === undefined ? [] : ['--name', name];
  const res = await rf(['log', '--store', store, ...named, '--key', 'ctr:*', '--json'], {
    timeoutMs: 60_000,
  });
  expect(res.code, res.stderr).toBe(0);
  const out = new Map<number, StoredCounter>();
  for (const line of res.stdout.split('\n')) {
    if (line.trim() === '') continue;
    const r = JSON.parse(line) as {
      time: string;
      args: string[];
      late: { from: string; until: string } | null;
    };
    out.set(Number.parseInt(String(r.args[0]).slice('ctr:'.length), 10), {
      time: Date.parse(r.time),
      late:
        r.late === null ? null : { from: Date.parse(r.late.from), until: Date.parse(r.late.until) },
    });
  }
  return out;
}

/**
 * Every stored write's time bounds its send time: never earlier than the send, less the
 * capture latency; and a late write's window holds its send time.
 */
export function expectTimesBoundSends(
  sent: readonly number[],
  stored: Map<number, StoredCounter>,
  latencyMs: number,
): void {
  for (const [i, s] of stored) {
    const at = sent[i]!;
    expect(s.time, `ctr:${i} stored before it was sent`).toBeGreaterThanOrEqual(at - latencyMs);
    if (s.late !== null) {
      expect(at, `ctr:${i} sent before its window`).toBeGreaterThanOrEqual(s.late.from - latencyMs);
      expect(at, `ctr:${i} sent after its window`).toBeLessThanOrEqual(s.late.until);
    }
  }
}

/** Which counter keys a restore holds: it is booted and asked. */
export async function restoredCounters(dir: string, count: number): Promise<Set<number>> {
  const booted = await startRedis({ dir, args: ['--appendonly', 'yes'] });
  try {
    const c = await booted.client();
    const present = new Set<number>();
    for (let i = 0; i < count; i++) if ((await c.call('EXISTS', `ctr:${i}`)) === 1) present.add(i);
    return present;
  } finally {
    await booted.stop();
  }
}

/** `rf restore --until T --json` (JSON on stdout, also for an error), parsed. */
export async function restoreAt(store: string, t: number, ...args: string[]) {
  const res = await rf(
    ['restore', '--store', store, '--until', `@${t / 1000}`, ...args, '--json'],
    {
      timeoutMs: 60_000,
    },
  );
  return { code: res.code, stderr: res.stderr, json: JSON.parse(res.stdout) };
}

/**
 * A restore from the AOF record at T (second precision, the `#TS` rule) holds exactly the keys
 * sent in T's second or before; a key sent within the latency of a second's end may have run in
 * the next one, so it is not judged.
 */
export function expectBySecond(
  sent: readonly number[],
  present: Set<number>,
  t: number,
  latencyMs: number,
): void {
  const second = Math.floor(t / 1000);
  let checked = 0;
  for (const [i, at] of sent.entries()) {
    const ran = Math.floor(at / 1000);
    if (ran !== Math.floor((at + latencyMs) / 1000)) continue;
    expect(present.has(i), `ctr:${i}, sent in second ${ran}, T in ${second}`).toBe(ran <= second);
    checked++;
  }
  expect(checked).toBeGreaterThan(sent.length / 2);
}
