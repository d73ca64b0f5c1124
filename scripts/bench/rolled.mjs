/**
 * Row 14: a restore to the newest write of an archive whose last base from the master is many
 * writes back, as `--base-every 24h` leaves it on a busy master, without and then with a base
 * rf rolled forward itself (`rf compact`) near the end. `rf restore --out` then boots the
 * directory with redis-server, which replays the AOF rf wrote: the replay a rolled base
 * shortens. Both restored instances must have the same DEBUG DIGEST.
 *
 * The archive is row 10's (rf's own StreamWriter, redis-benchmark-like frames, 10 writes per ms).
 */
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Archive } from '../../dist/store/archive.js';
import { Store } from '../../dist/store/store.js';
import { bootDigest } from './archive.mjs';
import { median, removeDir, tempDir } from './env.mjs';
import { fmtCount, fmtRatio, fmtSeconds, row } from './format.mjs';
import { build } from './index.mjs';
import { rfOk } from './rf.mjs';
import { SOURCE } from './store.mjs';

/** Where the rolled base is cut: this share of the writes lies before it. */
const ROLL_AT = 0.9;

/** The first and last capture times of the archive's one timeline. */
async function span(store) {
  const kv = await Store.open(store, { create: false });
  try {
    const [tl] = await new Archive(kv).timelines(SOURCE);
    return { from: tl.startedAt, until: tl.lastTime };
  } finally {
    await kv.close();
  }
}

/** rf restore --until latest --out, then a boot: the seconds of each, and the digest. */
async function restoreAndBoot(store, work, label) {
  const out = path.join(work, label);
  try {
    const r = await rfOk(
      ['restore', '--store', store, '--until', 'latest', '--out', out, '--json'],
      {
        measure: true,
        timeoutMs: 1_800_000,
      },
    );
    const plan = JSON.parse(r.stdout);
    const boot = await bootDigest(out);
    return {
      restore: r.ms / 1000,
      boot: boot.readyMs / 1000,
      total: r.ms / 1000 + boot.readyMs / 1000,
      digest: boot.digest,
      baseOffset: plan.base?.offset ?? null,
      replayed: plan.replay?.writes ?? null,
      cpu: r.usage?.cpuSeconds ?? null,
    };
  } finally {
    await removeDir(out);
  }
}

export async function rolledRows(cfg, _want, progress) {
  const { writes, reps } = cfg.rolled;
  const work = await tempDir('rolled');
  try {
    const store = path.join(work, 'store');
    const built = await build(store, writes);
    progress(`rolled: built ${fmtCount(writes)} writes after the master's base`);
    const runs = async (label) => {
      const all = [];
      for (let r = 0; r < reps; r++) all.push(await restoreAndBoot(store, work, label));
      return all;
    };
    const without = await runs('without');
    const { from, until } = await span(store);
    const rollAt = new Date(from + Math.floor(ROLL_AT * (until - from))).toISOString();
    const c0 = performance.now();
    const compacted = JSON.parse(
      (
        await rfOk(['compact', '--store', store, '--until', rollAt, '--json'], {
          timeoutMs: 1_800_000,
        })
      ).stdout,
    );
    const compactSeconds = (performance.now() - c0) / 1000;
    progress(`rolled: rf compact to ${rollAt} in ${compactSeconds.toFixed(1)} s`);
    const withRolled = await runs('with');
    for (const w of withRolled) {
      if (w.digest !== without[0].digest)
        throw new Error(
          `restored from the rolled base: digest ${w.digest}, without it ${without[0].digest}`,
        );
      if (w.baseOffset !== compacted.base.offset)
        throw new Error(
          `the restore started from offset ${w.baseOffset}, not the rolled base's ${compacted.base.offset}`,
        );
    }
    const t0 = median(without.map((r) => r.total));
    const t1 = median(withRolled.map((r) => r.total));
    const describe = (rs) =>
      `${fmtSeconds(median(rs.map((r) => r.total)))} (rf restore ${fmtSeconds(median(rs.map((r) => r.restore)))} + boot ${fmtSeconds(median(rs.map((r) => r.boot)))}), ${fmtCount(rs[0].replayed)} writes replayed`;
    return [
      row({
        id: '14',
        name: 'restore after a rolled base',
        workload: `rf restore --until latest --out, then redis-server boots it; ${fmtCount(writes)} redis-benchmark-like writes (${fmtCount(Math.round(built.streamBytes / 1e6))} MB of stream) after the master's only base; the rolled base is cut at ${Math.round(ROLL_AT * 100)}% of them; median of ${reps}; both restores give the same DEBUG DIGEST`,
        rf: `with the rolled base: ${describe(withRolled)}`,
        reference: `without: ${describe(without)}`,
        ratio: t1 / t0,
        ratioText: `${fmtRatio(t1 / t0)} the restore without it`,
        target: 'none (reported)',
        notes: [
          `rf compact built the rolled base (replaying ${fmtCount(compacted.replay.writes)} writes in a scratch redis-server) in ${fmtSeconds(compactSeconds)}: paid once, on the backup host, not by the master`,
        ],
        data: { writes, without, withRolled, compactSeconds, rollAt },
      }),
    ];
  } finally {
    await removeDir(work);
  }
}
