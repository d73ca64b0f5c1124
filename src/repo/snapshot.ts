import {
  type AofBaseMeta,
  type AofChunkMeta,
  type AofFileRecord,
  aofKeys,
} from '../store/chunks.js';
import { keys, prefixEnd } from '../store/keys.js';
import { offloadKey } from '../store/offload.js';
import type { KvReader } from '../store/store.js';
import type { BaseMeta, SegmentMeta, Timeline } from '../store/types.js';
import {
  type FileEntry,
  type Manifest,
  names,
  type PackEntry,
  type PackKind,
  packFamily,
  repoStatusKey,
} from './layout.js';

/**
 * What the store holds of one source, read for an upload: every record that is not in a pack
 * (the manifest carries them), in key order. Pack families are skipped with one seek each, so
 * the segment data is never read here.
 */
export async function readRecords(kv: KvReader, src: string): Promise<[string, Buffer][]> {
  const out: [string, Buffer][] = [];
  const record = await kv.get(keys.source(src));
  if (record !== undefined) out.push([keys.source(src), record]);
  const end = prefixEnd(keys.sourcePrefix(src));
  let from = keys.sourcePrefix(src);
  for (;;) {
    let skipTo: string | undefined;
    for await (const [key, value] of kv.entries({ gte: from, lt: end })) {
      if (packFamily(src, key) !== undefined) {
        skipTo = prefixEnd(familyPrefix(src, key));
        break;
      }
      if (key !== repoStatusKey(src) && key !== offloadKey(src)) out.push([key, value]);
    }
    if (skipTo === undefined) return out;
    from = skipTo;
  }
}

/** `s/<src>/seg/`, `s/<src>/aof/data/`, …: the family prefix a pack-family key lies in. */
function familyPrefix(src: string, key: string): string {
  const rest = key.slice(src.length + 3);
  const parts = rest.split('/');
  const depth = parts[0] === 'aof' ? 2 : 1;
  return `s/${src}/${parts.slice(0, depth).join('/')}/`;
}

/** The records of a source as JSON, by key prefix. */
export function recordsUnder<T>(records: readonly [string, Buffer][], prefix: string): T[] {
  return records
    .filter(([k]) => k.startsWith(prefix))
    .map(([, v]) => JSON.parse(v.toString('utf8')) as T);
}

export interface PlannedPack {
  kind: PackKind;
  group: number;
  /** The store keys the pack holds. */
  keys: string[];
  start: number;
  end: number;
  firstTime: number;
  lastTime: number;
  bytes: number;
}

export interface UploadPlan {
  packs: PlannedPack[];
  files: Omit<FileEntry, 'name' | 'stored' | 'storedSha256'>[];
  /** Bytes held locally and not yet in the bucket. */
  backlogBytes: number;
  /** Restores at or after this instant need nothing the bucket lacks... before it, they might. */
  heldUntil: number;
}

/** Cuts one group's records, in order, into packs of about `packBytes`. */
class PackFiller {
  private open: PlannedPack | undefined;

  constructor(
    private readonly packs: PlannedPack[],
    private readonly kind: PackKind,
    private readonly group: number,
    private readonly options: { packBytes: number; maxPacks: number },
  ) {}

  full(): boolean {
    return this.packs.length >= this.options.maxPacks;
  }

  add(
    keys: string[],
    range: { start: number; end: number; firstTime: number; lastTime: number },
    bytes: number,
  ): void {
    const { kind, group } = this;
    this.open ??= { kind, group, keys: [], ...range, bytes: 0 };
    this.open.keys.push(...keys);
    this.open.end = range.end;
    this.open.lastTime = range.lastTime;
    this.open.bytes += bytes;
    if (this.open.bytes >= this.options.packBytes) this.finish();
  }

  /** Closes the pack being filled, if any: the rest of what is durable goes up as it is. */
  finish(): void {
    if (this.open !== undefined && !this.full()) this.packs.push(this.open);
    this.open = undefined;
  }
}

/** Where the bucket's packs of one group end: the next pack starts after it. */
function uploadedEnd(manifest: Manifest, kind: PackKind, group: number): number | undefined {
  let end: number | undefined;
  for (const p of manifest.packs) {
    if (p.kind === kind && p.group === group && (end === undefined || p.end > end)) end = p.end;
  }
  return end;
}

/**
 * What to upload next for one source, given the records read by readRecords and the bucket's
 * newest manifest: the sealed segments and AOF chunks after what the bucket holds, in packs of
 * about `packBytes` (at most `maxPacks` of them), and the base files it lacks. Only what the
 * records already count as durable is taken, so the manifest never names more than its records say.
 */
export async function planUpload(
  kv: KvReader,
  src: string,
  records: readonly [string, Buffer][],
  manifest: Manifest,
  options: { packBytes: number; maxPacks: number },
): Promise<UploadPlan> {
  const packs: PlannedPack[] = [];
  let backlogBytes = 0;
  let heldUntil = Number.POSITIVE_INFINITY;
  for (const tl of recordsUnder<Timeline>(records, keys.timelinePrefix(src))) {
    const after = uploadedEnd(manifest, 'seg', tl.id) ?? tl.baseOffset;
    if (after >= tl.durableOffset) continue;
    backlogBytes += tl.durableOffset - after;
    const last = manifest.packs.filter((p) => p.kind === 'seg' && p.group === tl.id).at(-1);
    heldUntil = Math.min(heldUntil, last?.lastTime ?? tl.startedAt);
    const fill = new PackFiller(packs, 'seg', tl.id, options);
    const prefix = keys.segmentPrefix(src, tl.id);
    for await (const [, v] of kv.entries({
      gte: keys.segment(src, tl.id, after + 1),
      lt: prefixEnd(prefix),
    })) {
      if (fill.full()) break;
      const seg = JSON.parse(v.toString('utf8')) as SegmentMeta;
      if (seg.end > tl.durableOffset) break;
      // A segment an older rf wrote has no key index.
      const index = keys.keyIndex(src, tl.id, seg.start);
      const hasIndex = (await kv.get(index)) !== undefined;
      fill.add(
        [
          keys.segment(src, tl.id, seg.start),
          keys.data(src, tl.id, seg.start),
          keys.time(src, tl.id, seg.lastTime, seg.start),
          ...(hasIndex ? [index] : []),
        ],
        { start: seg.start, end: seg.end, firstTime: seg.firstTime, lastTime: seg.lastTime },
        seg.end - seg.start + 1,
      );
    }
    fill.finish();
  }
  for (const file of recordsUnder<AofFileRecord>(records, aofKeys.filePrefix(src))) {
    const after = uploadedEnd(manifest, 'aof', file.fileNo) ?? file.chunkStart;
    if (after >= file.capturedEnd) continue;
    backlogBytes += file.capturedEnd - after;
    const fill = new PackFiller(packs, 'aof', file.fileNo, options);
    const prefix = aofKeys.chunkPrefix(src, file.fileNo);
    for await (const [, v] of kv.entries({
      gte: aofKeys.chunk(src, file.fileNo, after),
      lt: prefixEnd(prefix),
    })) {
      if (fill.full()) break;
      const chunk = JSON.parse(v.toString('utf8')) as AofChunkMeta;
      if (chunk.end > file.capturedEnd) break;
      fill.add(
        [aofKeys.chunk(src, file.fileNo, chunk.start), aofKeys.data(src, file.fileNo, chunk.start)],
        {
          start: chunk.start,
          end: chunk.end,
          firstTime: chunk.capturedAt,
          lastTime: chunk.capturedAt,
        },
        chunk.end - chunk.start,
      );
    }
    fill.finish();
  }
  const held = new Set(manifest.files.map((f) => f.path));
  const files: UploadPlan['files'] = [];
  for (const b of recordsUnder<BaseMeta>(records, keys.basePrefix(src))) {
    if (held.has(b.file)) continue;
    files.push({ path: b.file, bytes: b.bytes, sha256: b.sha256 });
    backlogBytes += b.bytes;
    heldUntil = Math.min(heldUntil, b.takenAt);
  }
  for (const b of recordsUnder<AofBaseMeta>(records, aofKeys.basePrefix(src))) {
    if (b.file === null || held.has(b.file)) continue;
    files.push({ path: b.file, bytes: b.bytes, sha256: b.sha256 });
    backlogBytes += b.bytes;
  }
  return { packs, files, backlogBytes, heldUntil };
}

/** What retention removed from the store, the bucket drops too: packs and files no record needs. */
export function prunable(
  src: string,
  records: readonly [string, Buffer][],
  manifest: Manifest,
): { packs: PackEntry[]; files: FileEntry[] } {
  const timelines = new Map(
    recordsUnder<Timeline>(records, keys.timelinePrefix(src)).map((t) => [t.id, t]),
  );
  const pruned = new Map<number, number>();
  for (const [k, v] of records) {
    if (k.startsWith(`s/${src}/pruned/`))
      pruned.set(
        Number.parseInt(k.slice(k.lastIndexOf('/') + 1), 16),
        JSON.parse(v.toString('utf8')) as number,
      );
  }
  const aofFiles = new Set(
    recordsUnder<AofFileRecord>(records, aofKeys.filePrefix(src)).map((f) => f.fileNo),
  );
  const packs = manifest.packs.filter((p) =>
    p.kind === 'seg'
      ? !timelines.has(p.group) || p.end <= (pruned.get(p.group) ?? -1)
      : !aofFiles.has(p.group),
  );
  const paths = new Set([
    ...recordsUnder<BaseMeta>(records, keys.basePrefix(src)).map((b) => b.file),
    ...recordsUnder<AofBaseMeta>(records, aofKeys.basePrefix(src)).flatMap((b) =>
      b.file === null ? [] : [b.file],
    ),
  ]);
  return { packs, files: manifest.files.filter((f) => !paths.has(f.path)) };
}

export const emptyManifest = (src: string): Manifest => ({
  format: 1,
  source: src,
  seq: 0,
  writtenAt: 0,
  kv: [],
  packs: [],
  files: [],
});

export { names };
