import { existsSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { LIVE_TOLERANCE_MS } from '../../src/bounds/windows.js';
import { waitFor } from '../helpers/load.js';
import { aofCaughtUp, type RfDaemon, rf } from '../helpers/rf.js';
import { caughtUp, testScope } from '../helpers/scope.js';
import {
  expectBySecond,
  expectTimesBoundSends,
  restoreAt,
  restoredCounters,
  StampedCounter,
  storedCounters,
} from '../helpers/stamped.js';

/**
 * Writes rf receives late keep honest times: a stall, a kill and restart, a long snapshot
 * transfer. Each write's stored time is no earlier than it was sent; those received late lie
 * in an imprecise window whose bounds hold their send time; a restore inside a window is
 * refused, or taken from the AOF record to the second; a restore after it is exact as ever.
 */

/** Send to capture on loopback, with room for a busy machine (as restore-bounds.test.ts). */
const LATENCY_MS = 25;

const scope = testScope();
const { master, storeDir } = scope;

function listen(url: string, store: string, extra: string[] = []): RfDaemon {
  return scope.daemon(['--source', url, '--store', store, '--flush-interval', '20', ...extra]);
}

async function imprecise(store: string) {
  const res = await rf(['info', '--store', store, '--json']);
  expect(res.code, res.stderr).toBe(0);
  return JSON.parse(res.stdout).sources[0].imprecise as {
    from: string;
    until: string;
    offsets: [number, number];
    precision: string;
  }[];
}

/** The window an outage from `start` to `end` left: it starts before and ends after. */
function windowOver(windows: Awaited<ReturnType<typeof imprecise>>, start: number, end: number) {
  const w = windows.find((x) => Date.parse(x.from) <= start && Date.parse(x.until) >= end);
  expect(w, `no window over ${start}..${end} in ${JSON.stringify(windows)}`).toBeDefined();
  return { ...w!, fromMs: Date.parse(w!.from), untilMs: Date.parse(w!.until) };
}

/** A restore at T holds exactly the keys sent by T, less those in flight within `slack` of it. */
function expectExactAt(sent: readonly number[], present: Set<number>, t: number, slack: number) {
  for (const [i, at] of sent.entries()) {
    if (at > t) expect(present.has(i), `ctr:${i} sent ${at - t} ms after T`).toBe(false);
    if (at <= t - slack) expect(present.has(i), `ctr:${i} sent ${t - at} ms before T`).toBe(true);
  }
}

describe('honest times for writes rf receives late', () => {
  it('a SIGSTOP of rf for 8 s: a window the stream refuses and the AOF places to the second', async () => {
    const r = await master([
      '--appendonly',
      'yes',
      '--aof-timestamp-enabled',
      'yes',
      '--repl-backlog-size',
      '64mb',
    ]);
    const c = await r.client();
    const store = await storeDir();
    const work = path.dirname(store);
    const d = listen(r.url, store, [
      '--aof-dir',
      r.dir,
      '--chunk-size',
      '64k',
      '--rewrite-at',
      'off',
    ]);
    await d.waitForLog((l) => l.msg === 'first timeline started from the base');
    const ctr = new StampedCounter(c, 5, 'x'.repeat(1000));
    ctr.start();
    await waitFor(() => ctr.sent > 100, 'the counter to run');
    const stopAt = Date.now();
    d.child.kill('SIGSTOP');
    // The stall itself: the master buffers for rf meanwhile.
    await sleep(8000);
    // Taken before the signal: rf may run before this process reads the clock again.
    const contAt = Date.now();
    d.child.kill('SIGCONT');
    const atCont = ctr.sent;
    await waitFor(() => ctr.sent > atCont + 500, 'the counter to run on', 30_000);
    const count = await ctr.stop();
    await caughtUp(r, 60_000);
    await aofCaughtUp(store, r.dir, 60_000);

    const stored = await storedCounters(store);
    expect(stored.size).toBe(count);
    expectTimesBoundSends(ctr.sentAt, stored, LATENCY_MS);
    for (const [i, sentAt] of ctr.sentAt.entries()) {
      if (sentAt > stopAt + 200 && sentAt < contAt - 200)
        expect(stored.get(i)!.late, `ctr:${i}, sent in the stall`).not.toBeNull();
    }
    const w = windowOver(await imprecise(store), stopAt + 200, contAt);
    expect(w.precision).toBe('second');

    const t = stopAt + 4000;
    const refused = await restoreAt(store, t, '--from', 'stream', '--dry-run');
    expect(refused.code, refused.stderr).toBe(2);
    expect(refused.json.error.code).toBe('RF_TIME_IMPRECISE');
    expect(refused.json.error.details.window.offsets).toEqual(w.offsets);
    const notWritten = path.join(work, 'refused');
    const refusedOut = await restoreAt(store, t, '--from', 'stream', '--out', notWritten);
    expect(refusedOut.code).toBe(2);
    expect(existsSync(notWritten)).toBe(false);

    // --from auto takes the AOF record, which the stall left untouched: to the second.
    const fromAof = path.join(work, 'aof');
    const res = await restoreAt(store, t, '--out', fromAof);
    expect(res.code, res.stderr).toBe(0);
    expect([res.json.from, res.json.precision, res.json.chosenBecause]).toEqual([
      'aof',
      'second',
      'imprecise-window',
    ]);
    expectBySecond(ctr.sentAt, await restoredCounters(fromAof, count), t, LATENCY_MS);

    // After the window the stream is exact, as ever.
    const after = w.untilMs + 500;
    expect(ctr.sentAt.at(-1)!).toBeGreaterThan(after + 200);
    const fromStream = path.join(work, 'after');
    const later = await restoreAt(store, after, '--out', fromStream);
    expect(later.code, later.stderr).toBe(0);
    expect([later.json.from, later.json.precision]).toEqual(['stream', 'millisecond']);
    expectExactAt(ctr.sentAt, await restoredCounters(fromStream, count), after, LATENCY_MS);
  }, 120_000);

  it('kill -9 of rf for 3 s and +CONTINUE: the replayed backlog is a window, refused inside', async () => {
    const r = await master(['--repl-backlog-size', '64mb']);
    const c = await r.client();
    const store = await storeDir();
    const work = path.dirname(store);
    let d = listen(r.url, store);
    await d.waitForLog((l) => l.msg === 'first timeline started from the base');
    const ctr = new StampedCounter(c, 5, 'x'.repeat(200));
    ctr.start();
    await waitFor(() => ctr.sent > 100, 'the counter to run');
    const killAt = Date.now();
    await d.stop('SIGKILL');
    // The outage itself.
    await sleep(3000);
    const restartAt = Date.now();
    d = listen(r.url, store);
    await d.waitForLog((l) => l.msg.startsWith('partial resync accepted (+CONTINUE)'));
    const atRestart = ctr.sent;
    await waitFor(() => ctr.sent > atRestart + 300, 'the counter to run on', 30_000);
    const count = await ctr.stop();
    await caughtUp(r, 60_000);

    const stored = await storedCounters(store);
    expect(stored.size).toBe(count);
    expectTimesBoundSends(ctr.sentAt, stored, LATENCY_MS);
    for (const [i, sentAt] of ctr.sentAt.entries()) {
      if (sentAt > killAt + 200 && sentAt < restartAt - 200)
        expect(stored.get(i)!.late, `ctr:${i}, sent while rf was down`).not.toBeNull();
    }
    const w = windowOver(await imprecise(store), killAt + 200, restartAt);
    expect(w.precision).toBe('bounds');
    // The text forms say it too, within 80 columns.
    const text = await rf(['info', '--store', store, '--tz', 'UTC']);
    expect(text.stdout).toContain('imprecise (writes received late');
    expect(text.stdout).toContain(`${w.from} .. ${w.until}`);
    for (const line of text.stdout.split('\n')) expect(line.length, line).toBeLessThanOrEqual(80);
    const late = [...stored].find(([, s]) => s.late?.from === w.fromMs)![0];
    const log = await rf(['log', '--store', store, '--key', `ctr:${late}`]);
    expect(log.stdout).toContain(`ctr:${late}`);
    expect(log.stdout).toContain(`[late: ran after ${w.from}]`);

    const t = killAt + 1500;
    const refused = await restoreAt(store, t, '--dry-run');
    expect(refused.code, refused.stderr).toBe(2);
    expect(refused.json.error.code).toBe('RF_TIME_IMPRECISE');
    expect(refused.json.error.hint).toContain('--accept-imprecise');

    // Accepted: the cut is by the stored times, the latest each write can have run at.
    const accepted = path.join(work, 'accepted');
    const cut = await restoreAt(store, t, '--accept-imprecise', '--out', accepted);
    expect(cut.code, cut.stderr).toBe(0);
    expect(cut.json.precision).toBe('bounds');
    expect(cut.json.imprecise.offsets).toEqual(w.offsets);
    const present = await restoredCounters(accepted, count);
    for (const [i, s] of stored) expect(present.has(i), `ctr:${i}`).toBe(s.time <= t);

    const after = w.untilMs + 500;
    expect(ctr.sentAt.at(-1)!).toBeGreaterThan(after + 200);
    const fromStream = path.join(work, 'after');
    const later = await restoreAt(store, after, '--out', fromStream);
    expect(later.code, later.stderr).toBe(0);
    expectExactAt(ctr.sentAt, await restoredCounters(fromStream, count), after, LATENCY_MS);
  }, 120_000);

  it('a full sync of a large base: writes the master buffered during the transfer keep their time', async () => {
    const r = await master(['--enable-debug-command', 'yes']);
    const c = await r.client();
    await c.call('DEBUG', 'POPULATE', '40000', 'base', '100');
    // Each key costs the snapshot 100 µs (a testing knob of Redis): a transfer of about 4 s.
    await c.call('CONFIG', 'SET', 'rdb-key-save-delay', '100');
    const ctr = new StampedCounter(c, 5);
    ctr.start();
    await waitFor(() => ctr.sent > 50, 'the counter to run');
    const store = await storeDir();
    const work = path.dirname(store);
    const d = listen(r.url, store);
    const began = await d.waitForLog((l) => l.msg.startsWith('full resync (+FULLRESYNC)'));
    const loaded = await d.waitForLog(
      (l) => l.msg === 'first timeline started from the base',
      60_000,
    );
    const takenAt = Number(began.time);
    const baseAt = Number(loaded.time);
    expect(baseAt - takenAt).toBeGreaterThan(2000);
    const atBase = ctr.sent;
    await waitFor(() => ctr.sent > atBase + 200, 'the counter to run on', 30_000);
    const count = await ctr.stop();
    await c.call('CONFIG', 'SET', 'rdb-key-save-delay', '0');
    await caughtUp(r, 60_000);

    const stored = await storedCounters(store);
    expectTimesBoundSends(ctr.sentAt, stored, LATENCY_MS);
    // The master's offset clock went on during the transfer: no window, and times to the sample.
    expect(await imprecise(store)).toEqual([]);
    for (const [i, s] of stored)
      expect(s.time - ctr.sentAt[i]!, `ctr:${i} stored late`).toBeLessThanOrEqual(
        LIVE_TOLERANCE_MS,
      );

    // Before the base was loaded, writes made a second before T are in a restore at T.
    const t = baseAt - 300;
    const during = path.join(work, 'during');
    const res = await restoreAt(store, t, '--out', during);
    expect(res.code, res.stderr).toBe(0);
    expectExactAt(ctr.sentAt, await restoredCounters(during, count), t, LIVE_TOLERANCE_MS);

    const after = ctr.sentAt.at(-1)! - 300;
    const fromStream = path.join(work, 'after');
    const later = await restoreAt(store, after, '--out', fromStream);
    expect(later.code, later.stderr).toBe(0);
    expectExactAt(ctr.sentAt, await restoredCounters(fromStream, count), after, LATENCY_MS);
  }, 120_000);
});
