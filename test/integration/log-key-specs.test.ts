import { describe, expect, it } from 'vitest';
import { openReader } from '../../src/daemon/open-reader.js';
import { bufferArgs, keyArgs } from '../../src/resp/key-args.js';
import { specsFor } from '../../src/resp/key-specs.js';
import { Archive } from '../../src/store/archive.js';
import { hasFeature, lacks } from '../helpers/redis-bin.js';
import { rf } from '../helpers/rf.js';
import { caughtUp, testScope } from '../helpers/scope.js';

/**
 * rf listen records the master's own key specs (COMMAND), and key extraction follows them: the
 * keys it finds by them must be the keys rf's own table finds, for the commands both know, on
 * whichever server the harness runs (RF_TEST_REDIS_BIN_DIR).
 */

const scope = testScope();

const b = (...a: string[]) => a.map((x) => Buffer.from(x));

/** Writes as the stream carries them, with their key arguments. */
const EXAMPLES: [string[], number[]][] = [
  [['set', 'k', 'v', 'PXAT', '1700000000000'], [1]],
  [
    ['mset', 'a', '1', 'b', '2'],
    [1, 3],
  ],
  [
    ['del', 'a', 'b', 'c'],
    [1, 2, 3],
  ],
  [
    ['rename', 'a', 'b'],
    [1, 2],
  ],
  [
    ['zunionstore', 'd', '2', 'a', 'b', 'WEIGHTS', '1', '2'],
    [1, 3, 4],
  ],
  [
    ['eval', 'return 1', '2', 'a', 'b', 'argv'],
    [3, 4],
  ],
  [['xgroup', 'create', 's', 'g', '$'], [2]],
  [
    ['sort', 'k', 'BY', 'w_*', 'STORE', 'd'],
    [1, 5],
  ],
  [
    ['georadius', 'g', '0', '0', '1', 'km', 'STORE', 'd'],
    [1, 7],
  ],
  [
    ['blmove', 'a', 'b', 'LEFT', 'RIGHT', '0'],
    [1, 2],
  ],
  [
    ['bitop', 'OR', 'd', 'a', 'b'],
    [2, 3, 4],
  ],
  [['hset', 'h', 'f', 'v'], [1]],
  // Redis 7.4: hash-field expiry, as the stream carries it (HPEXPIREAT … FIELDS n field…).
  [['hpexpireat', 'h', '1700000000000', 'FIELDS', '2', 'f1', 'f2'], [1]],
  [['hpersist', 'h', 'FIELDS', '1', 'f1'], [1]],
];

describe("key extraction by the master's own key specs", () => {
  it.skipIf(lacks('COMMAND key specs'))(
    'rf listen records them, and they give the keys rf’s table gives',
    async () => {
      const master = await scope.master();
      const store = await scope.storeDir();
      const d = scope.daemon(['--source', master.url, '--store', store]);
      await d.waitForLog((l) => l.msg === 'first timeline started from the base');
      expect((await d.stop()).code).toBe(0);
      const kv = await openReader(store);
      const specs = await new Archive(kv).commandSpecs('default').finally(() => kv.close());
      expect(specs).toBeDefined();
      // Read-only commands never reach the stream and are not kept.
      expect(specs!.get).toBeUndefined();
      expect(specs!['xgroup|create']).toBeDefined();
      let compared = 0;
      for (const [argv, keys] of EXAMPLES) {
        const name = argv[0]!;
        const args = b(...argv);
        if (specsFor(specs!, name, bufferArgs(args)) === undefined) continue;
        expect(keyArgs(name, args, specs), argv.join(' ')).toEqual({ kind: 'keys', indices: keys });
        expect(keyArgs(name, args), argv.join(' ')).toEqual({ kind: 'keys', indices: keys });
        compared++;
      }
      expect(compared).toBeGreaterThanOrEqual(12);
      if (hasFeature('hash-field expiry')) expect(compared).toBe(EXAMPLES.length);
    },
  );

  it.skipIf(lacks('hash-field expiry'))(
    'rf log --key finds an HPEXPIREAT … FIELDS by its key, not by a field named like it',
    async () => {
      const master = await scope.master();
      const c = await master.client();
      const store = await scope.storeDir();
      const d = scope.daemon(['--source', master.url, '--store', store, '--flush-interval', '10']);
      await d.waitForLog((l) => l.msg === 'first timeline started from the base');
      await c.call('HSET', 'h', 'user:1', 'x', 'other', 'y');
      await c.call('HPEXPIRE', 'h', '600000', 'FIELDS', '1', 'user:1');
      await c.call('HSET', 'user:1', 'name', 'ana');
      await caughtUp(master);
      const log = await rf([
        'log',
        '--store',
        store,
        '--since',
        '-1h',
        '--key',
        'user:*',
        '--json',
      ]);
      expect(log.code, log.stderr).toBe(0);
      const names = log.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { command: string; args: string[] })
        .map((w) => [w.command, w.args[0]]);
      // The HSET of user:1 itself; not the field user:1 of h, set or given a TTL.
      expect(names).toEqual([['HSET', 'user:1']]);
    },
  );
});
