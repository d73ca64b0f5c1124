import { RfError } from '../errors.js';
import { json, type KvReader } from './store.js';

/** What --local-retain removed from the store because the bucket holds it: local, never uploaded. */
export const offloadKey = (src: string) => `s/${src}/repo-local`;

/** What the bucket's newest manifest names: only that may leave the store. */
export interface BucketHolds {
  repo: string;
  /** Timeline id → where its uploaded segments end. */
  segmentsEnd: ReadonlyMap<number, number>;
  /** Base files (store-relative paths) in the bucket. */
  files: ReadonlySet<string>;
  /** AOF file number → where its uploaded chunks end (a byte position, exclusive). */
  aofEnd: ReadonlyMap<number, number>;
}

/**
 * What `rf listen --local-retain` removed from the store once the bucket held it: the segment
 * data up to an offset per timeline, and base files. The records themselves stay (the manifest
 * is made from them, and the bucket's retention reads them), so `rf info` still shows the whole
 * range; only the bytes are in the bucket alone.
 */
export interface OffloadRecord {
  repo: string;
  /** Timeline id → the end offset of the last segment whose data is only in the bucket. */
  segmentsUpTo: Record<string, number>;
  /** Base files (store-relative paths) only in the bucket. */
  files: string[];
  /** AOF file number → where the chunks whose data is only in the bucket end (absent: none). */
  aofUpTo?: Record<string, number>;
  at: number;
}

export async function readOffload(kv: KvReader, src: string): Promise<OffloadRecord | undefined> {
  const v = await kv.get(offloadKey(src));
  return v === undefined ? undefined : json.decode<OffloadRecord>(v);
}

export function segmentOffloaded(
  rec: OffloadRecord | undefined,
  timeline: number,
  end: number,
): boolean {
  return rec !== undefined && end <= (rec.segmentsUpTo[String(timeline)] ?? -1);
}

export function chunkOffloaded(
  rec: OffloadRecord | undefined,
  fileNo: number,
  end: number,
): boolean {
  return rec !== undefined && end <= (rec.aofUpTo?.[String(fileNo)] ?? -1);
}

export function fileOffloaded(rec: OffloadRecord | undefined, file: string): boolean {
  return rec?.files.includes(file) === true;
}

/**
 * A read of the local store that needs bytes only the bucket holds: refused, naming the bucket.
 * rf does not fetch them behind the operator's back: `--repo` makes the command read the bucket.
 */
export function onlyInRepo(
  rec: OffloadRecord,
  src: string,
  what: string,
  details: Record<string, unknown>,
): RfError {
  return new RfError(
    'RF_REPO_ONLY',
    `${what} of ${src} is no longer in the local store: rf listen --local-retain removed it once the bucket held it`,
    {
      details: { source: src, repo: rec.repo, ...details },
      hint: `read it from the bucket: give --repo ${rec.repo} (and --repo-key-file if the archive is encrypted)`,
    },
  );
}

/** Refuses a stream restore whose base or first segments are only in the bucket. */
export async function assertLocal(
  kv: KvReader,
  src: string,
  plan: { timeline: number; baseFile: string; fromOffset: number },
): Promise<void> {
  const rec = await readOffload(kv, src);
  if (rec === undefined) return;
  if (fileOffloaded(rec, plan.baseFile))
    throw onlyInRepo(rec, src, `the base ${plan.baseFile}`, { timeline: plan.timeline });
  // The first segment a replay reads ends after fromOffset: it is offloaded if fromOffset is.
  if (segmentOffloaded(rec, plan.timeline, plan.fromOffset + 1))
    throw onlyInRepo(rec, src, `the stream after offset ${plan.fromOffset}`, {
      timeline: plan.timeline,
    });
}

/** Refuses an AOF restore that would replay chunks whose data is only in the bucket. */
export async function assertAofLocal(
  kv: KvReader,
  src: string,
  files: readonly { fileNo: number; name: string }[],
): Promise<void> {
  const rec = await readOffload(kv, src);
  if (rec === undefined) return;
  const gone = files.find((f) => rec.aofUpTo?.[String(f.fileNo)] !== undefined);
  if (gone !== undefined)
    throw onlyInRepo(rec, src, `the AOF chunks of ${gone.name}`, { fileNo: gone.fileNo });
}
