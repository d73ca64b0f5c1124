/**
 * The HTTP conversation between `rf ship` and `rf listen --ingest`. Every request carries
 * `Authorization: Bearer <token>`; every put is idempotent, so the shipper repeats whatever it is
 * not sure arrived.
 *
 *   GET  /v1/sources/<name>/aof/held                 → HeldState: where a shipper resumes
 *   PUT  /v1/sources/<name>/aof/files/<fileNo>       JSON AofFileRecord → the stored record
 *   PUT  /v1/sources/<name>/aof/chunks/<fileNo>/<start>
 *        body: the chunk's bytes; header x-rf-chunk: base64url(JSON AofChunkMeta)
 *        → 201 stored | 200 duplicate | 409 conflict or order | 422 checksum
 *   PUT  /v1/sources/<name>/aof/bases/<fileNo>
 *        body: the base's bytes (chunked); header x-rf-base: base64url(JSON BaseOffer);
 *        trailer x-rf-sha256: the sender's checksum, known once the bytes are sent
 *   PUT  /v1/sources/<name>/aof/gaps/<fileNo>/<start> JSON AofGap
 *   PUT  /v1/sources/<name>/aof/size                 JSON AofSizeSample
 *
 * Errors are `{ error: { code, message, details? } }` with the RfError code.
 */
export const WIRE_VERSION = 'v1';
export const CHUNK_HEADER = 'x-rf-chunk';
export const BASE_HEADER = 'x-rf-base';
export const SHA_TRAILER = 'x-rf-sha256';

export function encodeHeader(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

export function decodeHeader<T>(value: string | string[] | undefined): T | undefined {
  if (typeof value !== 'string') return undefined;
  try {
    return JSON.parse(Buffer.from(value, 'base64url').toString('utf8')) as T;
  } catch {
    return undefined;
  }
}

export const paths = {
  held: (src: string) => `/${WIRE_VERSION}/sources/${encodeURIComponent(src)}/aof/held`,
  file: (src: string, fileNo: number) =>
    `/${WIRE_VERSION}/sources/${encodeURIComponent(src)}/aof/files/${fileNo}`,
  chunk: (src: string, fileNo: number, start: number) =>
    `/${WIRE_VERSION}/sources/${encodeURIComponent(src)}/aof/chunks/${fileNo}/${start}`,
  base: (src: string, fileNo: number) =>
    `/${WIRE_VERSION}/sources/${encodeURIComponent(src)}/aof/bases/${fileNo}`,
  gap: (src: string, fileNo: number, start: number) =>
    `/${WIRE_VERSION}/sources/${encodeURIComponent(src)}/aof/gaps/${fileNo}/${start}`,
  size: (src: string) => `/${WIRE_VERSION}/sources/${encodeURIComponent(src)}/aof/size`,
};

export type Route =
  | { kind: 'held'; source: string }
  | { kind: 'file'; source: string; fileNo: number }
  | { kind: 'chunk'; source: string; fileNo: number; start: number }
  | { kind: 'base'; source: string; fileNo: number }
  | { kind: 'gap'; source: string; fileNo: number; start: number }
  | { kind: 'size'; source: string };

const NUMBER = /^(0|[1-9][0-9]{0,15})$/;

/** The route a request path names, or null. */
export function parseRoute(pathname: string): Route | null {
  const parts = pathname.split('/');
  if (parts[0] !== '' || parts[1] !== WIRE_VERSION || parts[2] !== 'sources' || parts[4] !== 'aof')
    return null;
  let source: string;
  try {
    source = decodeURIComponent(parts[3] ?? '');
  } catch {
    return null;
  }
  const rest = parts.slice(5);
  const num = (s: string | undefined) =>
    s !== undefined && NUMBER.test(s) && Number.isSafeInteger(Number(s)) ? Number(s) : null;
  const [what, a, b] = rest;
  if (what === 'held' && rest.length === 1) return { kind: 'held', source };
  if (what === 'size' && rest.length === 1) return { kind: 'size', source };
  if (what === 'files' && rest.length === 2 && num(a) !== null)
    return { kind: 'file', source, fileNo: num(a)! };
  if (what === 'bases' && rest.length === 2 && num(a) !== null)
    return { kind: 'base', source, fileNo: num(a)! };
  if (
    (what === 'chunks' || what === 'gaps') &&
    rest.length === 3 &&
    num(a) !== null &&
    num(b) !== null
  ) {
    return { kind: what === 'chunks' ? 'chunk' : 'gap', source, fileNo: num(a)!, start: num(b)! };
  }
  return null;
}
