import { keyArgs } from '../resp/key-args.js';
import type { Archive } from '../store/archive.js';
import type { ClusterRecord } from '../store/cluster.js';
import { forEachEntry } from '../store/codec.js';
import { frameKindAt, frameNameIs, Kind, nameOf, parseArgs } from '../store/commands.js';

/**
 * How far either side of T the streams are read for MIGRATEs under way: the source waits for the
 * target's reply to RESTORE-ASKING for at most its timeout before it deletes (cluster.c
 * migrateCommand), and redis-cli --cluster gives MIGRATE 60 s (--cluster-timeout).
 */
export const MIGRATE_WINDOW_MS = 60_000;

const RESTORE_ASKING = 'restore-asking';

/** Past this many keys in flight, each write near T is parsed rather than searched for each key. */
const SEARCH_KEYS = 64;

/**
 * Every data write of a shard's stream captured in [from, until], in stream order (timelines in
 * turn), as its buffer and place: nothing is kept between calls of `fn`.
 */
async function eachWriteNear(
  archive: Archive,
  source: string,
  from: number,
  until: number,
  fn: (time: number, buf: Buffer, pos: number, len: number) => void,
  /** Only segments whose frames may include this command (lower-case) are walked frame by frame. */
  only?: string,
): Promise<void> {
  for (const tl of await archive.timelines(source)) {
    if (tl.lastTime < from || tl.startedAt > until) continue;
    const first = await archive.segmentAtTime(source, tl.id, from);
    if (first === undefined) continue;
    for await (const meta of archive.segments(source, tl.id, first.start)) {
      if (meta.firstTime > until || meta.start > tl.durableOffset) break;
      if (only !== undefined && !mayName(await archive.readSegmentPayload(source, meta), only))
        continue;
      const { data, where } = await archive.segmentData(source, meta);
      forEachEntry(data, meta, where, (_offset, time, pos, len) => {
        if (time > until) return false;
        if (time >= from && frameKindAt(data, pos) === Kind.write) fn(time, data, pos, len);
        return undefined;
      });
    }
  }
}

/**
 * Whether some argument of `payload`'s frames could be the command name `lit` (lower-case ASCII):
 * one native search for its bulk header, so that a segment without it (nearly every one) is not
 * walked frame by frame. A match inside a value is a false alarm the walk then rules out.
 */
function mayName(payload: Buffer, lit: string): boolean {
  const header = `$${lit.length}\r\n`;
  for (let at = payload.indexOf(header); at >= 0; at = payload.indexOf(header, at + 1)) {
    const start = at + header.length;
    let i = 0;
    while (i < lit.length && (payload[start + i]! | 0x20) === lit.charCodeAt(i)) i++;
    if (i === lit.length) return true;
  }
  return false;
}

/** A key a shard received by RESTORE-ASKING at or before T, and when. */
interface Received {
  importing: string;
  key: string;
  bytes: Buffer;
  at: number;
  /** The other shards whose first write to the key after `at` has been seen. */
  settled: Set<string>;
}

/**
 * The keys a MIGRATE had copied but not yet deleted at `t`, by the shard whose copy a restore
 * must drop. MIGRATE runs RESTORE-ASKING on the importing shard, and only once that answers
 * deletes the key on the migrating one; a T between the two finds the key on both, the same
 * value. The importing shard's copy is kept: a key is in flight at T when a shard received it by
 * RESTORE-ASKING at or before T and another shard's first write to it after that is a DEL after
 * T. A key the other shard writes any other way first was not the one migrated: it stays.
 *
 * Two passes over the writes near T, streamed: the RESTORE-ASKINGs before T (none, unless slots
 * were moving), then, only for those keys, each other shard's writes after them. Memory holds the
 * keys in flight, not the writes: a busy cluster writes millions in the window.
 */
export async function keysInFlight(
  archive: Archive,
  cluster: ClusterRecord,
  t: number,
  windowMs = MIGRATE_WINDOW_MS,
): Promise<Map<string, Buffer[]>> {
  const received = new Map<string, Received>();
  for (const shard of cluster.shards) {
    await eachWriteNear(
      archive,
      shard.source,
      t - windowMs,
      t,
      (time, buf, pos, len) => {
        if (!frameNameIs(buf, pos, RESTORE_ASKING)) return;
        const key = parseArgs(buf.subarray(pos, pos + len))[1];
        if (key === undefined) return;
        // The last RESTORE-ASKING of each key at or before T on this shard.
        const id = `${shard.source}\n${key.toString('latin1')}`;
        received.set(id, {
          importing: shard.source,
          key: key.toString('latin1'),
          bytes: Buffer.from(key),
          at: time,
          settled: new Set(),
        });
      },
      RESTORE_ASKING,
    );
  }
  const drop = new Map<string, Buffer[]>();
  if (received.size === 0) return drop;
  const all = [...received.values()];
  const since = Math.min(...all.map((r) => r.at));
  for (const shard of cluster.shards) {
    const other = shard.source;
    const mine = all.filter((r) => r.importing !== other);
    if (mine.length === 0) continue;
    const specs = await archive.commandSpecs(other);
    await eachWriteNear(archive, other, since, t + windowMs, (time, buf, pos, len) => {
      const frame = buf.subarray(pos, pos + len);
      if (mine.length <= SEARCH_KEYS && !mine.some((r) => frame.includes(r.bytes))) return;
      const args = parseArgs(frame);
      const name = nameOf(args[0]);
      const spec = keyArgs(name, args, specs);
      const text = args.map((a) => a.toString('latin1'));
      const touched =
        spec.kind === 'keys'
          ? spec.indices.map((i) => text[i]!)
          : spec.kind === 'every-key'
            ? []
            : text.slice(1);
      for (const r of mine) {
        if (r.settled.has(other) || time < r.at || !touched.includes(r.key)) continue;
        r.settled.add(other);
        if ((name === 'del' || name === 'unlink') && time > t) {
          const list = drop.get(other) ?? [];
          list.push(r.bytes);
          drop.set(other, list);
        }
      }
    });
  }
  return drop;
}
