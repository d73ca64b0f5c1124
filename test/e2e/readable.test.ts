import { describe, expect, it } from 'vitest';
import { rf } from '../helpers/rf.js';
import { testScope } from '../helpers/scope.js';

/** What a new user reads: an empty timeline and an error's details, in words, not JSON. */
const scope = testScope();

describe('rf speaks to a person', () => {
  it('a timeline with only its base says so, and a time outside the archive lists the ranges', async () => {
    const master = await scope.master();
    const store = await scope.storeDir();
    const d = scope.daemon(['--source', master.url, '--store', store]);
    await d.waitForLog((l) => l.msg === 'first timeline started from the base');
    expect((await d.stop()).code).toBe(0);
    const info = await rf(['info', '--store', store]);
    expect(info.code).toBe(0);
    expect(info.stdout).toMatch(/replid [0-9a-f]+\S* {2}base at offset \d+, no writes yet/);
    expect(info.stdout).not.toMatch(/offsets (\d+)\.\.(\d+)/);
    const res = await rf(['restore', '--store', store, '--until', '@1000000000', '--dry-run']);
    expect(res.code).toBe(2);
    expect(res.stderr).toContain('RF_TIME_OUT_OF_RANGE');
    expect(res.stderr).toMatch(/restorable: .*from \d{4}-\d\d-\d\dT[^ ]+Z until /);
    expect(res.stderr).not.toMatch(/[[{]"/);
  });
});
