import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { freePort } from '../helpers/redis.js';
import { rf } from '../helpers/rf.js';
import { testScope } from '../helpers/scope.js';

/**
 * What rf listen --cluster and --sentinel refuse, before anything is reached: each refusal is
 * RF_USAGE (exit 2) naming the flag, says why and what to do instead, and leaves no store.
 */
const scope = testScope();

async function refused(args: string[]) {
  const store = await scope.storeDir();
  const res = await rf(['listen', ...args, '--store', store, '--json'], { timeoutMs: 20_000 });
  expect(res.code, res.stderr).toBe(2);
  expect(existsSync(store)).toBe(false);
  return JSON.parse(res.stdout).error as {
    code: string;
    message: string;
    hint: string;
    details: { flag: string };
  };
}

describe('rf listen --cluster and --sentinel refuse what follows one master host', () => {
  it('--aof-dir and --ingest: the AOF is on the master’s host, which a failover changes', async () => {
    const port = await freePort();
    const modes = [
      ['--cluster', '--source', `redis://127.0.0.1:${port}`],
      ['--sentinel', `redis://127.0.0.1:${port}`, '--master-name', 'm'],
    ];
    const flags = [
      ['--aof-dir', '/var/lib/redis/appendonlydir'],
      ['--ingest', '127.0.0.1:7800'],
    ];
    for (const mode of modes) {
      for (const flag of flags) {
        const err = await refused([...mode, ...flag]);
        expect(err.code).toBe('RF_USAGE');
        expect(err.details.flag).toBe(flag[0]);
        expect(err.message).toContain(flag[0]);
        expect(err.message).toContain(mode[0]);
        expect(err.message).toContain('failover');
        expect(err.message).not.toContain('yet');
        expect(err.hint).toContain('rf listen --source');
      }
    }
  });
});

describe('rf listen --cluster and --sentinel take --retain and --roll-base-every', () => {
  it('past the flags, each goes on to reach its source (exit 3 with none answering, not RF_USAGE)', async () => {
    const port = await freePort();
    const modes = [
      ['--cluster', '--source', `redis://127.0.0.1:${port}`],
      ['--sentinel', `redis://127.0.0.1:${port}`, '--master-name', 'm'],
    ];
    for (const mode of modes) {
      const store = await scope.storeDir();
      const res = await rf(
        [
          'listen',
          ...mode,
          '--retain',
          '7d',
          '--roll-base-every',
          '1h',
          '--store',
          store,
          '--connect-timeout',
          '2000',
          '--json',
        ],
        { timeoutMs: 30_000 },
      );
      const output = `${res.stdout}${res.stderr}`;
      expect(res.code, output).toBe(3);
      expect(output).toContain(mode[0] === '--cluster' ? 'RF_CONNECT' : 'RF_SENTINEL_UNREACHABLE');
      expect(output).not.toContain('RF_USAGE');
    }
  });
});
