import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/load.js';
import { aofCaughtUp, type RfDaemon, rf } from '../helpers/rf.js';
import { caughtUp, testScope } from '../helpers/scope.js';
import { expectBySecond, restoreAt, restoredCounters, StampedCounter } from '../helpers/stamped.js';

/**
 * A gap in the stream is not a gap in the AOF record: rf was down longer than the master's
 * backlog holds, so the stream starts a new timeline, but the master's AOF went on. rf info says
 * the AOF covers the gap, and --from auto restores a time in it from the AOF, to the second.
 */

const LATENCY_MS = 25;

const scope = testScope();
const { master, storeDir } = scope;

function listen(url: string, store: string, aofDir: string): RfDaemon {
  return scope.daemon([
    ...['--source', url, '--store', store, '--flush-interval', '20'],
    ...['--aof-dir', aofDir, '--chunk-size', '64k', '--rewrite-at', 'off'],
  ]);
}

describe('a stream gap the AOF record covers', () => {
  it('rf info says so and --from auto restores a time in it to the second', async () => {
    const r = await master([
      ...['--appendonly', 'yes', '--aof-timestamp-enabled', 'yes'],
      // The smallest backlog Redis allows: an outage of two seconds overruns it.
      ...['--repl-backlog-size', '16384'],
    ]);
    const c = await r.client();
    const store = await storeDir();
    let d = listen(r.url, store, r.dir);
    await d.waitForLog((l) => l.msg === 'first timeline started from the base');
    const ctr = new StampedCounter(c, 5, 'x'.repeat(500));
    ctr.start();
    await waitFor(() => ctr.sent > 100, 'the counter to run');
    await d.stop('SIGKILL');
    // The outage itself.
    await sleep(2000);
    d = listen(r.url, store, r.dir);
    await d.waitForLog((l) => l.msg === 'new timeline after a gap', 30_000);
    const atRestart = ctr.sent;
    await waitFor(() => ctr.sent > atRestart + 200, 'the counter to run on', 30_000);
    const count = await ctr.stop();
    await caughtUp(r, 60_000);
    await aofCaughtUp(store, r.dir, 60_000);

    const info = JSON.parse((await rf(['info', '--store', store, '--json'])).stdout).sources[0];
    expect(info.gaps).toHaveLength(1);
    const gap = info.gaps[0];
    expect(gap.aof).toBe(true);
    const text = await rf(['info', '--store', store]);
    expect(text.stdout).toContain('the AOF record covers it: --from auto restores it');

    const t = Math.round((Date.parse(gap.from) + Date.parse(gap.until)) / 2);
    const refused = await restoreAt(store, t, '--from', 'stream', '--dry-run');
    expect(refused.code, refused.stderr).toBe(2);
    expect(refused.json.error.code).toBe('RF_TIME_IN_GAP');

    const out = path.join(path.dirname(store), 'aof');
    const res = await restoreAt(store, t, '--out', out);
    expect(res.code, res.stderr).toBe(0);
    expect([res.json.from, res.json.precision, res.json.chosenBecause]).toEqual([
      'aof',
      'second',
      'stream-gap',
    ]);
    expectBySecond(ctr.sentAt, await restoredCounters(out, count), t, LATENCY_MS);
  }, 120_000);
});
