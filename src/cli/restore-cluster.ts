import { openReader } from '../daemon/open-reader.js';
import { restoreClusterOut } from '../restore/cluster-out.js';
import { type ClusterRecord, readCluster } from '../store/cluster.js';
import { describeInstant, isoUtc, machineZone } from '../time.js';
import { out } from './output.js';
import { bootCommand, type RestoreOptions } from './restore.js';

/** The cluster `--name` names in the store, if it names one. */
export async function findCluster(store: string, name: string): Promise<ClusterRecord | undefined> {
  const kv = await openReader(store);
  try {
    return await readCluster(kv, name);
  } finally {
    await kv.close();
  }
}

/** `rf restore --out DIR` of a cluster: one bootable directory per shard and DIR/cluster.json. */
export async function runClusterOut(
  options: RestoreOptions & { out: string },
  cluster: ClusterRecord,
  began: number,
): Promise<number> {
  const r = await restoreClusterOut({
    open: () => openReader(options.store),
    cluster,
    until: options.until,
    tz: options.tz ?? machineZone(),
    now: Date.now(),
    from: options.from,
    acceptImprecise: options.acceptImprecise === true,
    dir: options.out,
    onResolved: (until) => out.note(describeInstant(until)),
  });
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
