/**
 * The archive in a bucket (README, "Object storage"). Under `<prefix>/<source>/`:
 *
 *   seg/<tl>/<start>-<end>        stream pack: the segments [start, end] of timeline tl, with
 *                                 their metadata and time index, as the store holds them
 *   aof/<fileNo>/<start>-<end>    AOF pack: the chunks [start, end) of one AOF file
 *   file/<path>                   a base file (RDB or AOF base), at its path in the store
 *   manifest/<seq>                the archive as of one moment: every other record of the
 *                                 source, and the packs and files above with their checksums
 *
 * Numbers are fixed-width lower-case hex (as in the store's keys), so names sort in offset
 * order and the highest manifest is the newest. Packs and files never change once written; a
 * manifest names only objects already in the bucket, so a reader that starts from the newest
 * manifest always finds a whole archive, whatever an interrupted upload left behind.
 */
import { RfError } from '../errors.js';
import { hex } from '../store/keys.js';

export const MANIFEST_FORMAT = 1;

export type PackKind = 'seg' | 'aof';

export interface PackEntry {
  name: string;
  kind: PackKind;
  /** The timeline (seg) or AOF file number (aof). */
  group: number;
  /** seg: first and last offset (inclusive); aof: byte range [start, end). */
  start: number;
  end: number;
  firstTime: number;
  lastTime: number;
  /** Content bytes, and the bytes stored in the bucket with their sha256. */
  bytes: number;
  stored: number;
  storedSha256: string;
}

export interface FileEntry {
  name: string;
  /** Relative to the store directory, as the store's records name it. */
  path: string;
  bytes: number;
  sha256: string;
  stored: number;
  storedSha256: string;
}

export interface Manifest {
  format: typeof MANIFEST_FORMAT;
  source: string;
  seq: number;
  writtenAt: number;
  /** Every record of the source that is not in a pack, as [key, base64 value]. */
  kv: [string, string][];
  packs: PackEntry[];
  files: FileEntry[];
}

export const names = {
  source: (src: string) => `${src}/`,
  pack: (src: string, kind: PackKind, group: number, start: number, end: number) =>
    `${src}/${kind}/${hex(group, 8)}/${hex(start, 16)}-${hex(end, 16)}`,
  file: (src: string, rel: string) => `${src}/file/${rel}`,
  manifestPrefix: (src: string) => `${src}/manifest/`,
  manifest: (src: string, seq: number) => `${src}/manifest/${hex(seq, 16)}`,
};

export function seqOfManifest(name: string): number | undefined {
  const m = /\/manifest\/([0-9a-f]{16})$/.exec(name);
  return m === null ? undefined : Number.parseInt(m[1]!, 16);
}

/** A pack's bytes: (u32 key length, key, u32 value length, value) for each record, in key order. */
export function encodePack(records: readonly [string, Buffer][]): Buffer {
  const parts: Buffer[] = [];
  for (const [key, value] of records) {
    const k = Buffer.from(key, 'utf8');
    const head = Buffer.allocUnsafe(4);
    head.writeUInt32LE(k.length);
    const vlen = Buffer.allocUnsafe(4);
    vlen.writeUInt32LE(value.length);
    parts.push(head, k, vlen, value);
  }
  return Buffer.concat(parts);
}

export function decodePack(data: Buffer, name: string): [string, Buffer][] {
  const out: [string, Buffer][] = [];
  let pos = 0;
  const need = (n: number) => {
    if (pos + n > data.length) {
      throw new RfError(
        'RF_CORRUPT',
        `the bucket object ${name} is malformed: a record runs past its end`,
        {
          details: { object: name },
          hint: 'run `rf verify --repo …` to list every damaged object',
        },
      );
    }
  };
  while (pos < data.length) {
    need(4);
    const klen = data.readUInt32LE(pos);
    pos += 4;
    need(klen + 4);
    const key = data.toString('utf8', pos, pos + klen);
    pos += klen;
    const vlen = data.readUInt32LE(pos);
    pos += 4;
    need(vlen);
    out.push([key, data.subarray(pos, pos + vlen)]);
    pos += vlen;
  }
  return out;
}

/** Which records of a source go into packs, and which pack family. */
export function packFamily(src: string, key: string): PackKind | undefined {
  const rest = key.startsWith(`s/${src}/`) ? key.slice(src.length + 3) : undefined;
  if (rest === undefined) return undefined;
  // A segment's key index travels with it (store/key-index.ts).
  if (['seg/', 'dat/', 'time/', 'kix/'].some((f) => rest.startsWith(f))) return 'seg';
  if (rest.startsWith('aof/chunk/') || rest.startsWith('aof/data/')) return 'aof';
  return undefined;
}

/** The uploader's own status record: local, never copied to the bucket. */
export const repoStatusKey = (src: string) => `s/${src}/repo`;

export function parseManifest(content: Buffer, name: string): Manifest {
  let m: Manifest;
  try {
    m = JSON.parse(content.toString('utf8')) as Manifest;
  } catch (err) {
    throw new RfError('RF_CORRUPT', `the bucket object ${name} is not a manifest rf can read`, {
      details: { object: name },
      hint: 'run `rf verify --repo …`',
      cause: err,
    });
  }
  if (m.format !== MANIFEST_FORMAT) {
    throw new RfError(
      'RF_CORRUPT',
      `the manifest ${name} has format ${String(m.format)}, not ${MANIFEST_FORMAT}`,
      {
        details: { object: name, format: m.format },
        hint: 'read it with the rf version that wrote it',
      },
    );
  }
  return m;
}
