import { openReader } from '../daemon/open-reader.js';
import { redactUrl } from '../redis-url.js';
import { fetchForCluster, openClusterFromRepo } from '../repo/fetch.js';
import { repoFromFlags } from '../repo/open.js';
import { restoreClusterInto } from '../restore/cluster-into.js';
import { restoreClusterOut } from '../restore/cluster-out.js';
import { planCluster } from '../restore/cluster-plan.js';
import { type ClusterRecord, readCluster } from '../store/cluster.js';
import type { KvReader } from '../store/store.js';
import { describeInstant, isoUtc, machineZone, type ResolvedTime } from '../time.js';
import { out } from './output.js';
import { withFetchProgress } from './repo-progress.js';
import { bootCommand, type RestoreOptions, resultJson } from './restore.js';
import { intoRunning, stopIntoProgress } from './restore-into.js';

/** The cluster `--name` names in the store, if it names one. */
export async function findCluster(store: string, name: string): Promise<ClusterRecord | undefined> {
  const kv = await openReader(store);
  try {
    return await readCluster(kv, name);
  } finally {
    await kv.close();
  }
}

/** Whether `--name` names a cluster, in the store or in the bucket (its record only is read). */
export async function namesCluster(options: RestoreOptions): Promise<boolean> {
  const repo = await repoFromFlags(options);
  if (repo === undefined) return (await findCluster(options.store, options.name)) !== undefined;
  const found = await openClusterFromRepo(repo, options.name);
  if (found === undefined) {
    repo.close();
    return false;
  }
  await found.close();
  return true;
}

/** The cluster `--name` names, with the reader each step of its restore opens, or undefined. */
export interface ClusterToRestore {
  cluster: ClusterRecord;
  open: () => Promise<KvReader>;
  close: () => Promise<void>;
}

/**
 * The cluster to restore from the store, or from the bucket alone (every shard's base and
 * packs for T fetched first, with a progress line; --into waits until all have arrived).
 */
export async function clusterToRestore(
  options: RestoreOptions,
): Promise<ClusterToRestore | undefined> {
  const repo = await repoFromFlags(options);
  if (repo === undefined) {
    const cluster = await findCluster(options.store, options.name);
    return cluster === undefined
      ? undefined
      : { cluster, open: () => openReader(options.store), close: async () => undefined };
  }
  const found = await openClusterFromRepo(repo, options.name);
  if (found === undefined) {
    repo.close();
    return undefined;
  }
  try {
    await withFetchProgress(found.cache, () =>
      fetchForCluster(found, options.until, {
        tz: options.tz ?? machineZone(),
        now: Date.now(),
        from: options.from,
        settle: options.out === undefined,
      }),
    );
  } catch (err) {
    await found.close();
    throw err;
  }
  return found;
}

/** What every cluster restore is given: the cluster, T as typed, and the flags that read it. */
function moment(options: RestoreOptions, cluster: ClusterRecord, open: () => Promise<KvReader>) {
  return {
    open,
    cluster,
    until: options.until,
    tz: options.tz ?? machineZone(),
    now: Date.now(),
    from: options.from,
    acceptImprecise: options.acceptImprecise === true,
    // Every command that takes a time says what it understood, before it acts.
    onResolved: (until: ResolvedTime) => out.note(describeInstant(until)),
  };
}

/** `rf restore --out DIR` of a cluster: one bootable directory per shard and DIR/cluster.json. */
export async function runClusterOut(
  options: RestoreOptions & { out: string },
  cluster: ClusterRecord,
  began: number,
  open: () => Promise<KvReader>,
): Promise<number> {
  const r = await restoreClusterOut({ ...moment(options, cluster, open), dir: options.out });
  const shards = r.shards.map((s) => ({
    id: s.id,
    dir: s.dir,
    slots: s.slots,
    timeline: s.result.timeline,
    lastWrite: s.result.lastWrite === null ? null : isoUtc(s.result.lastWrite.time),
    command: bootCommand(s.dir, s.result.into?.kind === 'dir' ? s.result.into.layout : 'redis7'),
  }));
  if (options.json) {
    out.json({
      ok: true,
      cluster: cluster.name,
      until: { input: r.until.input, utc: isoUtc(r.until.ms), zone: r.until.zone },
      manifest: r.manifest,
      shards,
      seconds: (Date.now() - began) / 1000,
    });
    return 0;
  }
  out.line(`restored: cluster ${cluster.name}, ${shards.length} shards at ${isoUtc(r.until.ms)}`);
  for (const s of shards) {
    const slots = s.slots.map(([a, b]) => (a === b ? `${a}` : `${a}-${b}`)).join(',');
    out.line(`  shard ${s.id}  slots ${slots}  last write ${s.lastWrite ?? 'none after the base'}`);
    out.line(`    boot: ${s.command}`);
  }
  out.line(`  manifest     ${r.manifest}`);
  out.line(
    '  each directory boots as a standalone instance; see the README for bringing them up as a cluster',
  );
  return 0;
}

/** `rf restore --into URL` of a cluster: every shard at one T, merged into the target. */
export async function runClusterInto(
  options: RestoreOptions & { into: string },
  cluster: ClusterRecord,
  began: number,
  open: () => Promise<KvReader>,
): Promise<number> {
  const url = options.into;
  let r: Awaited<ReturnType<typeof restoreClusterInto>>;
  try {
    r = await restoreClusterInto({
      ...moment(options, cluster, open),
      into: (dryRun) => {
        // One progress line per shard's copy: the previous one ends before the next starts.
        stopIntoProgress();
        return intoRunning({ ...options, dryRun }, url) as ReturnType<typeof intoRunning> & {
          kind: 'into';
        };
      },
      conflict: options.conflict,
      dryRun: options.dryRun === true,
    });
  } finally {
    stopIntoProgress();
  }
  const shards = r.shards.map((s) => ({
    id: s.id,
    written: s.result.written,
    skipped: s.result.skipped,
    expired: s.result.expired,
  }));
  if (options.json) {
    out.json({
      ok: true,
      dryRun: options.dryRun === true,
      cluster: cluster.name,
      until: { input: r.until.input, utc: isoUtc(r.until.ms), zone: r.until.zone },
      written: r.written,
      skipped: r.skipped,
      expired: r.expired,
      conflicts: r.conflicts,
      shards,
      seconds: (Date.now() - began) / 1000,
    });
    return 0;
  }
  out.line(
    `${options.dryRun ? 'plan' : 'restored'}: cluster ${cluster.name}, ${shards.length} shards at ${isoUtc(r.until.ms)} into ${redactUrl(url)}`,
  );
  for (const s of shards)
    out.line(`  shard ${s.id}  written ${s.written}  skipped ${s.skipped}  expired ${s.expired}`);
  out.line(`  total        written ${r.written}  skipped ${r.skipped}  expired ${r.expired}`);
  return 0;
}

/** `rf restore --dry-run` of a cluster (without --into): each shard's plan at one T. */
export async function runClusterPlan(
  options: RestoreOptions,
  cluster: ClusterRecord,
  began: number,
  open: () => Promise<KvReader>,
): Promise<number> {
  const r = await planCluster(moment(options, cluster, open));
  if (options.json) {
    out.json({
      ok: true,
      dryRun: true,
      cluster: cluster.name,
      until: { input: r.until.input, utc: isoUtc(r.until.ms), zone: r.until.zone },
      shards: r.shards.map((s) => {
        const {
          ok: _ok,
          dryRun: _dry,
          seconds: _s,
          until: _u,
          into: _i,
          ...plan
        } = resultJson(s.result, began);
        return { id: s.id, slots: s.slots, inFlight: s.inFlight, ...plan };
      }),
      seconds: (Date.now() - began) / 1000,
    });
    return 0;
  }
  out.line(`plan: cluster ${cluster.name}, ${r.shards.length} shards at ${isoUtc(r.until.ms)}`);
  for (const { id, slots, inFlight, result } of r.shards) {
    const ranges = slots.map(([a, b]) => (a === b ? `${a}` : `${a}-${b}`)).join(',');
    const base = result.base.offset === null ? 'no base' : `base at offset ${result.base.offset}`;
    const last =
      result.lastWrite === null
        ? 'none after the base'
        : `${isoUtc(result.lastWrite.time)} offset ${result.lastWrite.offset} ${result.lastWrite.command.toUpperCase()}`;
    out.line(`  shard ${id}  slots ${ranges || 'none'}  timeline ${result.timeline ?? '-'}`);
    out.line(
      `    ${base} (taken ${isoUtc(result.base.takenAt)}), then ${result.replay.writes} writes in ${result.replay.segments} segments; last write ${last}`,
    );
    if (result.dropped !== null)
      out.line(
        `    dropped a transaction (MULTI at offset ${result.dropped.multiAt}, ${result.dropped.commands} commands): the target time falls inside it`,
      );
    if (inFlight > 0)
      out.line(
        `    ${inFlight} keys in the middle of a MIGRATE at T: restored from the other shard`,
      );
  }
  out.line('nothing written (--dry-run)');
  return 0;
}
