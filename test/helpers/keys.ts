import type { RedisClient } from '../../src/resp/client.js';

/** What a key is, for comparing instances: its value's digest and its absolute expiry. */
export interface KeyState {
  digest: string;
  /** PEXPIRETIME: -1 without an expiry. */
  expireAt: number;
}

/** Every key of one db, by name, with DEBUG DIGEST-VALUE and PEXPIRETIME (SCAN, then a pipeline). */
export async function keyStates(
  client: RedisClient,
  db: number,
  match = '*',
): Promise<Map<string, KeyState>> {
  await client.call('SELECT', String(db));
  const names = new Set<string>();
  let cursor = '0';
  do {
    const [next, batch] = (await client.call('SCAN', cursor, 'MATCH', match, 'COUNT', '1000')) as [
      unknown,
      unknown[],
    ];
    cursor = String(next);
    for (const k of batch) names.add(String(k));
  } while (cursor !== '0');
  const keys = [...names];
  const [digests, expiries] = await Promise.all([
    Promise.all(keys.map((k) => client.call('DEBUG', 'DIGEST-VALUE', k))),
    Promise.all(keys.map((k) => client.call('PEXPIRETIME', k))),
  ]);
  const states = new Map<string, KeyState>();
  keys.forEach((k, i) => {
    const digest = (digests[i] as unknown[])[0];
    states.set(k, { digest: String(digest), expireAt: Number(expiries[i]) });
  });
  await client.call('SELECT', '0');
  return states;
}

/** The same map with only the names `keep` accepts. */
export function only(states: Map<string, KeyState>, keep: (name: string) => boolean) {
  return new Map([...states].filter(([k]) => keep(k)));
}
