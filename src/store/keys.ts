/**
 * LevelDB key layout. Keys are UTF-8 strings whose numeric parts are fixed-width lower-case hex,
 * so that LevelDB's byte order is numeric order and a lookup by offset or by time is one seek.
 *
 *   src/<source>                               SourceRecord (JSON): one per archived master
 *   cl/<cluster>                               ClusterRecord (JSON): a cluster's shards and slot owners over time
 *   s/<source>/state                          DurableState (JSON): where a resume starts
 *   s/<source>/retention                      RetentionRecord (JSON): the window last pruned to
 *   s/<source>/seen                           SeenRecord (JSON): complete up to when, while the master idles
 *   s/<source>/tl/<tl>                         Timeline (JSON)
 *   s/<source>/pruned/<tl>                     offset (JSON): retention removed every segment ending at or before it
 *   s/<source>/base/<tl>/<offset>              BaseMeta (JSON); the RDB itself is a file
 *   s/<source>/seg/<tl>/<start>                SegmentMeta (JSON)
 *   s/<source>/dat/<tl>/<start>                segment data (binary, see codec.ts)
 *   s/<source>/time/<tl>/<lastTime>/<start>    time index: first segment whose last write is >= T
 *   s/<source>/ms/<replid>/<offset>            master offset sample (JSON [sentAt, answeredAt], see bounds/clock.ts)
 *   s/<source>/imp/<tl>/<firstOffset>          ImpreciseWindow (JSON): entries received late
 *   s/<source>/kix/<tl>/<start>                key index of the segment (binary, see key-index.ts)
 *   s/<source>/min/<tl>/<hour>                 writes and bytes per minute of one hour (binary, minutes.ts)
 *   s/<source>/counted/<tl>                    offset (JSON): the minute counts are whole from it on
 */

const SOURCE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export function isValidSourceName(name: string): boolean {
  return SOURCE_NAME.test(name);
}

export function hex(n: number, width: number): string {
  if (!Number.isSafeInteger(n) || n < 0) throw new TypeError(`not a key number: ${n}`);
  return n.toString(16).padStart(width, '0');
}

const off = (n: number) => hex(n, 16);
const tlHex = (n: number) => hex(n, 8);
const timeHex = (n: number) => hex(n, 12);

/** The smallest string greater than every key starting with `prefix`. */
export function prefixEnd(prefix: string): string {
  return `${prefix}\xff`;
}

export const keys = {
  sourcesPrefix: 'src/',
  clustersPrefix: 'cl/',
  cluster: (name: string) => `cl/${name}`,
  source: (src: string) => `src/${src}`,
  sourcePrefix: (src: string) => `s/${src}/`,
  state: (src: string) => `s/${src}/state`,
  retention: (src: string) => `s/${src}/retention`,
  seen: (src: string) => `s/${src}/seen`,
  commandSpecs: (src: string) => `s/${src}/command-specs`,
  timeline: (src: string, tl: number) => `s/${src}/tl/${tlHex(tl)}`,
  timelinePrefix: (src: string) => `s/${src}/tl/`,
  pruned: (src: string, tl: number) => `s/${src}/pruned/${tlHex(tl)}`,
  base: (src: string, tl: number, offset: number) => `s/${src}/base/${tlHex(tl)}/${off(offset)}`,
  basePrefix: (src: string, tl?: number) =>
    tl === undefined ? `s/${src}/base/` : `s/${src}/base/${tlHex(tl)}/`,
  segment: (src: string, tl: number, start: number) => `s/${src}/seg/${tlHex(tl)}/${off(start)}`,
  segmentPrefix: (src: string, tl: number) => `s/${src}/seg/${tlHex(tl)}/`,
  data: (src: string, tl: number, start: number) => `s/${src}/dat/${tlHex(tl)}/${off(start)}`,
  keyIndex: (src: string, tl: number, start: number) => `s/${src}/kix/${tlHex(tl)}/${off(start)}`,
  keyIndexPrefix: (src: string, tl: number) => `s/${src}/kix/${tlHex(tl)}/`,
  minutes: (src: string, tl: number, hour: number) => `s/${src}/min/${tlHex(tl)}/${hex(hour, 8)}`,
  minutePrefix: (src: string, tl: number) => `s/${src}/min/${tlHex(tl)}/`,
  countedFrom: (src: string, tl: number) => `s/${src}/counted/${tlHex(tl)}`,
  time: (src: string, tl: number, lastTime: number, start: number) =>
    `s/${src}/time/${tlHex(tl)}/${timeHex(lastTime)}/${off(start)}`,
  timeFrom: (src: string, tl: number, t: number) => `s/${src}/time/${tlHex(tl)}/${timeHex(t)}`,
  timePrefix: (src: string, tl: number) => `s/${src}/time/${tlHex(tl)}/`,
  sample: (src: string, replid: string, offset: number) => `s/${src}/ms/${replid}/${off(offset)}`,
  samplePrefix: (src: string, replid?: string) =>
    replid === undefined ? `s/${src}/ms/` : `s/${src}/ms/${replid}/`,
  imprecise: (src: string, tl: number, first: number) => `s/${src}/imp/${tlHex(tl)}/${off(first)}`,
  imprecisePrefix: (src: string, tl?: number) =>
    tl === undefined ? `s/${src}/imp/` : `s/${src}/imp/${tlHex(tl)}/`,
};

/** A replid as the master reports it: 40 hex characters, safe as a key part. */
export function isReplid(replid: string): boolean {
  return /^[0-9a-f]{40}$/.test(replid);
}

/** Reads the trailing start offset out of a `time/` index key. */
export function startFromTimeKey(key: string): number {
  return Number.parseInt(key.slice(key.lastIndexOf('/') + 1), 16);
}
