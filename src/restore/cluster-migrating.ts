import { keyArgs } from '../resp/key-args.js';
import type { Archive } from '../store/archive.js';
import type { ClusterRecord } from '../store/cluster.js';
import { Kind, kindOf, nameOf, parseArgs } from '../store/commands.js';

/**
 * How far either side of T the streams are read for MIGRATEs under way: the source waits for the
 * target's reply to RESTORE-ASKING for at most its timeout before it deletes (cluster.c
 * migrateCommand), and redis-cli --cluster gives MIGRATE 60 s (--cluster-timeout).
 */
export const MIGRATE_WINDOW_MS = 60_000;

/** One write of a shard's stream near T, reduced to what the in-flight check needs. */
interface Touch {
  time: number;
  /** The MIGRATE's first half on the importing shard (propagated verbatim). */
  restoreAsking: boolean;
  /** The MIGRATE's second half on the migrating shard (propagated as DEL). */
  del: boolean;
  /** The keys it touches, latin1; null when the command's keys are unknown (all args count). */
  keys: string[] | null;
  args: string[];
}

function touches(t: Touch, key: string): boolean {
  return t.keys === null ? t.args.slice(1).includes(key) : t.keys.includes(key);
}

async function touchesNear(
  archive: Archive,
  source: string,
  from: number,
  until: number,
): Promise<Touch[]> {
  const out: Touch[] = [];
  const specs = await archive.commandSpecs(source);
  for (const tl of await archive.timelines(source)) {
    if (tl.lastTime < from || tl.startedAt > until) continue;
    const first = await archive.segmentAtTime(source, tl.id, from);
    if (first === undefined) continue;
    for await (const meta of archive.segments(source, tl.id, first.start)) {
      if (meta.firstTime > until || meta.start > tl.durableOffset) break;
      for (const entry of (await archive.readSegment(source, meta)).entries) {
        if (entry.time < from || entry.time > until) continue;
        const args = parseArgs(entry.bytes);
        const name = nameOf(args[0]);
        if (kindOf(args[0]) !== Kind.write) continue;
        const spec = keyArgs(name, args, specs);
        const text = args.map((a) => a.toString('latin1'));
        out.push({
          time: entry.time,
          restoreAsking: name === 'restore-asking',
          del: name === 'del' || name === 'unlink',
          keys:
            spec.kind === 'keys'
              ? spec.indices.map((i) => text[i]!)
              : spec.kind === 'every-key'
                ? []
                : null,
          args: text,
        });
      }
    }
  }
  return out.sort((a, b) => a.time - b.time);
}

/**
 * The keys a MIGRATE had copied but not yet deleted at `t`, by the shard whose copy a restore
 * must drop. MIGRATE runs RESTORE-ASKING on the importing shard, and only once that answers
 * deletes the key on the migrating one; a T between the two finds the key on both, the same
 * value. The importing shard's copy is kept: a key is in flight at T when a shard received it by
 * RESTORE-ASKING at or before T and another shard's first write to it after that is a DEL after
 * T. A key the other shard writes any other way first was not the one migrated: it stays.
 */
export async function keysInFlight(
  archive: Archive,
  cluster: ClusterRecord,
  t: number,
  windowMs = MIGRATE_WINDOW_MS,
): Promise<Map<string, Buffer[]>> {
  const near = new Map<string, Touch[]>();
  for (const shard of cluster.shards)
    near.set(shard.source, await touchesNear(archive, shard.source, t - windowMs, t + windowMs));
  const drop = new Map<string, Buffer[]>();
  for (const [importing, writes] of near) {
    // The last RESTORE-ASKING of each key at or before T on this shard.
    const received = new Map<string, number>();
    for (const w of writes) {
      if (w.time > t) break;
      if (w.restoreAsking && w.args[1] !== undefined) received.set(w.args[1], w.time);
    }
    for (const [key, at] of received) {
      for (const [other, theirs] of near) {
        if (other === importing) continue;
        const next = theirs.find((w) => w.time >= at && touches(w, key));
        if (next?.del === true && next.time > t) {
          const list = drop.get(other) ?? [];
          list.push(Buffer.from(key, 'latin1'));
          drop.set(other, list);
        }
      }
    }
  }
  return drop;
}
