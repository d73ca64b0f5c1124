import { open, readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RedisClient } from '../../src/resp/client.js';
import { keys } from '../../src/store/keys.js';
import { Store } from '../../src/store/store.js';
import { waitFor } from '../helpers/load.js';
import { bootedDigest, type RedisServer, startRedis } from '../helpers/redis.js';
import { RfDaemon, rf } from '../helpers/rf.js';
import { caughtUp } from '../helpers/scope.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';
import { workloadPhase } from '../helpers/workload.js';

/**
 * `rf compact` rolls a base forward off the master, in a scratch redis-server. The oracle is the
 * master's own DEBUG DIGEST, read at checkpoints while rf captures: the rolled base must hold
 * the state at its checkpoint, and a restore to a later checkpoint that starts from it must give
 * that checkpoint's digest; with the rolled base's file damaged, `rf verify` reports it and the
 * restore falls back to the master's base, still exact.
 */

interface Checkpoint {
  at: string;
  digest: string;
}

let master: RedisServer;
let client: RedisClient;
let work: string;
let store: string;
const checkpoints: Checkpoint[] = [];

async function checkpoint(): Promise<void> {
  await caughtUp(master);
  const digest = String(await client.call('DEBUG', 'DIGEST'));
  // Capture times are stamped when rf receives a write: everything acknowledged is before now.
  const now = Date.now();
  checkpoints.push({ at: new Date(now).toISOString(), digest });
  // The next writes must be stamped after the checkpoint.
  await waitFor(() => Date.now() > now + 1, 'the clock to pass the checkpoint', 1_000, 1);
}

beforeAll(async () => {
  master = await startRedis({ args: ['--repl-diskless-sync-delay', '0'] });
  client = await master.client();
  work = await makeTempDir('rf-compact-');
  store = path.join(work, 'store');
  await workloadPhase(client, 0);
  const daemon = RfDaemon.start([
    '--source',
    master.url,
    '--store',
    store,
    '--flush-interval',
    '20',
  ]);
  try {
    await daemon.waitForLog((l) => l.msg === 'first timeline started from the base');
    for (let phase = 1; phase <= 2; phase++) {
      await workloadPhase(client, phase);
      await checkpoint();
    }
    await workloadPhase(client, 3);
    await caughtUp(master);
  } finally {
    // rf compact writes the store: the daemon that owns it is stopped first.
    await daemon.stop();
  }
}, 120_000);

afterAll(async () => {
  await master?.stop();
  if (work) await removeTempDir(work);
});

interface BaseJson {
  file: string;
  offset: number;
  via: string;
  rolled: { builtBy: string; fromOffset: number; digest: string } | null;
}

/** The parts of the --json answers of compact, restore and verify that the tests read. */
interface Answer {
  built: boolean;
  from: { offset: number };
  replay: { writes: number; fromOffset: number };
  base: BaseJson;
  skippedBases: { file: string; offset: number }[];
  sources: {
    problems: { code: string }[];
    rolledBases?: { match: boolean | null; rebuilt: string | null }[];
  }[];
  error: { code: string };
}

async function withStore<T>(fn: (kv: Store) => Promise<T>): Promise<T> {
  const kv = await Store.open(store, { create: false });
  try {
    return await fn(kv);
  } finally {
    await kv.close();
  }
}

async function json(
  args: string[],
): Promise<{ code: number | null; body: Answer; stderr: string }> {
  const res = await rf([...args, '--json'], { timeoutMs: 60_000 });
  return { code: res.code, body: JSON.parse(res.stdout) as Answer, stderr: res.stderr };
}

describe('rf compact: a base rolled forward off the master', () => {
  let rolled: BaseJson & { rolled: NonNullable<BaseJson['rolled']> };
  let masterBase: number;

  it('builds a base at the first checkpoint holding the master’s state there', async () => {
    expect(new Set(checkpoints.map((c) => c.digest)).size).toBe(2);
    const cp = checkpoints[0]!;
    const res = await json(['compact', '--store', store, '--until', cp.at]);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stderr).toContain(`until ${cp.at}`);
    expect(res.body.built).toBe(true);
    const base = res.body.base;
    if (base.rolled === null) throw new Error('the compacted base is not marked as rolled');
    rolled = { ...base, rolled: base.rolled };
    masterBase = res.body.from.offset;
    expect(rolled.via).toBe('rolled');
    expect(rolled.rolled.builtBy).toBe('rf');
    expect(rolled.rolled.fromOffset).toBe(masterBase);
    expect(rolled.offset).toBeGreaterThan(masterBase);
    expect(rolled.rolled.digest).toBe(cp.digest);
    expect(res.body.replay.writes).toBeGreaterThan(0);
    // The same moment again: the base is there already.
    const again = await json(['compact', '--store', store, '--until', cp.at]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.body.built).toBe(false);
    expect(again.body.base.offset).toBe(rolled.offset);
  }, 90_000);

  it('a restore after it starts from the rolled base and gives the master’s digest', async () => {
    const cp = checkpoints[1]!;
    const plan = await json(['restore', '--store', store, '--until', cp.at, '--dry-run']);
    expect(plan.code, plan.stderr).toBe(0);
    expect(plan.body.base.offset).toBe(rolled.offset);
    expect(plan.body.base.rolled?.digest).toBe(rolled.rolled.digest);
    expect(plan.body.replay.fromOffset).toBe(rolled.offset + 1);
    const text = await rf(['restore', '--store', store, '--until', cp.at, '--dry-run']);
    expect(text.stdout).toContain(
      `a rolled base: built by rf from the base at offset ${masterBase}`,
    );
    const out = path.join(work, 'out-rolled');
    const res = await rf(['restore', '--store', store, '--until', cp.at, '--out', out]);
    expect(res.code, res.stderr).toBe(0);
    expect(await bootedDigest(out)).toBe(cp.digest);
    const verify = await rf(['verify', '--store', store]);
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);
  }, 90_000);

  it('rf verify --rebuild-bases rebuilds it and finds the digest it recorded', async () => {
    const res = await json(['verify', '--store', store, '--rebuild-bases']);
    expect(res.code, res.stderr).toBe(0);
    const [source] = res.body.sources;
    expect(source?.rolledBases).toEqual([
      expect.objectContaining({
        offset: rolled.offset,
        file: rolled.file,
        fromOffset: masterBase,
        recorded: rolled.rolled.digest,
        rebuilt: checkpoints[0]!.digest,
        match: true,
      }),
    ]);
    // Without the flag, nothing is rebuilt and the report has no such field.
    const plain = await json(['verify', '--store', store]);
    expect(plain.code, plain.stderr).toBe(0);
    expect(plain.body.sources[0]?.rolledBases).toBeUndefined();
  }, 90_000);

  it('a rolled base whose record does not match its rebuild: base-digest, exit 1', async () => {
    const key = keys.base('default', 1, rolled.offset);
    const original = await withStore((kv) => kv.get(key));
    if (original === undefined) throw new Error(`no base record at ${key}`);
    const meta = JSON.parse(original.toString('utf8')) as BaseJson;
    const forged = { ...meta, rolled: { ...meta.rolled, digest: 'f'.repeat(40) } };
    await withStore((kv) =>
      kv.batch([{ type: 'put', key, value: Buffer.from(JSON.stringify(forged)) }]),
    );
    try {
      // The file still matches its sha256: only the rebuild can tell.
      const plain = await json(['verify', '--store', store]);
      expect(plain.code, plain.stderr).toBe(0);
      const res = await json(['verify', '--store', store, '--rebuild-bases']);
      expect(res.code, res.stderr).toBe(1);
      const problems = res.body.sources.flatMap((s) => s.problems);
      expect(problems).toEqual([
        expect.objectContaining({
          code: 'base-digest',
          where: expect.objectContaining({ file: rolled.file, timeline: 1 }),
        }),
      ]);
      expect(JSON.stringify(problems)).toContain('f'.repeat(40));
      expect(JSON.stringify(problems)).toContain(checkpoints[0]!.digest);
      expect(res.body.sources[0]?.rolledBases?.[0]).toMatchObject({ match: false });
      const text = await rf(['verify', '--store', store, '--rebuild-bases'], { timeoutMs: 60_000 });
      expect(text.code).toBe(1);
      expect(text.stdout).toContain('base-digest');
      expect(text.stdout).toContain(
        `rebuilt     rolled base at offset ${rolled.offset} from the base at offset ${masterBase}`,
      );
    } finally {
      await withStore((kv) => kv.batch([{ type: 'put', key, value: original }]));
    }
  }, 120_000);

  it('a damaged rolled base is reported by verify and passed over by the planner', async () => {
    const file = path.join(store, rolled.file);
    const before = await readFile(file);
    const fh = await open(file, 'r+');
    try {
      // One byte inside the file changed: same length, another sha256.
      const at = Math.floor(before.length / 2);
      await fh.write(Buffer.from([before[at]! ^ 0xff]), 0, 1, at);
    } finally {
      await fh.close();
    }
    const verify = await json(['verify', '--store', store]);
    expect(verify.code).toBe(1);
    const problems = verify.body.sources.flatMap((s) => s.problems);
    expect(problems).toEqual(
      expect.arrayContaining([expect.objectContaining({ code: 'base-checksum' })]),
    );
    expect(JSON.stringify(problems)).toContain(rolled.file);
    expect(JSON.stringify(problems)).toContain('the rolled base file');

    const cp = checkpoints[1]!;
    const plan = await json(['restore', '--store', store, '--until', cp.at, '--dry-run']);
    expect(plan.code, plan.stderr).toBe(0);
    expect(plan.body.base.offset).toBe(masterBase);
    expect(plan.body.base.rolled).toBeNull();
    expect(plan.body.skippedBases).toEqual([
      expect.objectContaining({ file: rolled.file, offset: rolled.offset }),
    ]);
    const out = path.join(work, 'out-fallback');
    const res = await rf(['restore', '--store', store, '--until', cp.at, '--out', out]);
    expect(res.code, res.stderr).toBe(0);
    expect(await bootedDigest(out)).toBe(cp.digest);
  }, 90_000);

  it('no redis-server on the backup host: a clear RF_REDIS_SERVER naming --redis-server', async () => {
    const missing = path.join(work, 'no-such-redis-server');
    const res = await json(['compact', '--store', store, '--redis-server', missing]);
    expect(res.code).toBe(3);
    expect(res.body.error.code).toBe('RF_REDIS_SERVER');
    expect(res.stderr).toContain(missing);
    expect(res.stderr).toContain('--redis-server');
    // rf verify --rebuild-bases needs one too, and says so the same way.
    const verify = await json([
      'verify',
      '--store',
      store,
      '--rebuild-bases',
      '--redis-server',
      missing,
    ]);
    expect(verify.code).toBe(3);
    expect(verify.body.error.code).toBe('RF_REDIS_SERVER');
    expect(verify.stderr).toContain(missing);
    expect(verify.stderr).toContain('--redis-server');
  }, 60_000);
});
