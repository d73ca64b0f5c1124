import type { RollSchedule } from '../../src/daemon/roll-bases.js';
import { silentLogger } from '../../src/logger.js';
import { rollBase, SCRATCH_IDLE_MS } from '../../src/restore/compact.js';

/**
 * A roll of each source's newest write every `everyMs` (a second by default), as rf listen
 * --roll-base-every runs it: the command line refuses periods under 5m, the daemon takes any.
 */
export function rollSchedule(everyMs = 1000, redisServer?: string): RollSchedule {
  return {
    everyMs,
    roll: async (store, source) => {
      const r = await rollBase(store, {
        name: source,
        until: 'latest',
        tz: 'UTC',
        now: Date.now(),
        ...(redisServer === undefined ? {} : { redisServer }),
        idleTimeoutMs: SCRATCH_IDLE_MS,
        log: silentLogger(),
      });
      return r.built ? r.base : null;
    },
  };
}
