/**
 * What `rf verify` reports: each problem with a stable code, where it is (source, timeline,
 * offsets, or file and byte range) and the capture times it spans, so an operator knows which
 * restore times it puts at risk.
 */

export type ProblemCode =
  /** A record (source, timeline, segment meta, base meta, chunk meta) that is not valid JSON. */
  | 'record-unreadable'
  /** Data under `s/<name>/` for a source with no `src/<name>` record. */
  | 'source-missing'
  /** Segments or bases of a timeline that has no record; or timeline ids that skip a number. */
  | 'timeline-missing'
  /** Timelines that overlap in time, or a later timeline that says it is the first. */
  | 'timeline-order'
  /** The timeline record disagrees with its segments (count, bytes, last offset). */
  | 'timeline-record'
  /** Offsets of a timeline no segment holds: a deleted or never written segment. */
  | 'offsets-missing'
  /** Two segments claim the same offsets. */
  | 'offsets-overlap'
  | 'segment-data-missing'
  /** Segment data with no meta pointing at it. */
  | 'segment-orphan'
  | 'segment-checksum'
  /** Data that matches its checksum but does not decode (or does not match its meta's length). */
  | 'segment-corrupt'
  /** A meta field that disagrees with the data: count, writes, times, db, open MULTI. */
  | 'segment-meta'
  /** A segment missing from the time index, or an index entry pointing at no segment. */
  | 'time-index'
  /** A segment's key index that does not match its writes, or that names no segment. */
  | 'key-index'
  /** A stored entry that is not exactly one well-formed RESP command. */
  | 'command-malformed'
  | 'base-missing'
  | 'base-truncated'
  | 'base-checksum'
  /** The base matches its checksum but is not a sound RDB (magic, version, CRC64). */
  | 'base-rdb'
  /**
   * A rolled base whose recorded DEBUG DIGEST is not what rebuilding it gives (the base it was
   * rolled from and the stream up to its offset, in a scratch redis-server): --rebuild-bases.
   */
  | 'base-digest'
  /** The resume state disagrees with the timelines. */
  | 'state'
  /** AOF chunks of a file that do not join up: bytes missing between two chunks. */
  | 'chunk-missing'
  | 'chunk-overlap'
  | 'chunk-checksum'
  /** Chunk bytes that are not whole RESP commands, or that disagree with the chunk's meta. */
  | 'chunk-corrupt'
  /** The AOF file record disagrees with its chunks. */
  | 'aof-file-record'
  | 'aof-base-missing'
  | 'aof-base-checksum'
  | 'aof-base-corrupt'
  /** The stream and the AOF hold different writes where both cover the same time. */
  | 'cross-check-mismatch'
  /** The stream and the AOF cover the same time but no common write was found to line them up. */
  | 'cross-check-unaligned';

export interface Location {
  timeline?: number;
  /** Stream offsets, both inclusive. */
  offsets?: { from: number; until: number };
  /** A file, relative to the store directory, or an AOF file's name on the Redis host. */
  file?: string;
  /** rf's number of an AOF file. */
  fileNo?: number;
  /** Byte range within `file`: [from, until), as chunks are. */
  bytes?: { from: number; until: number };
  /** A LevelDB key, for a record that cannot be read. */
  key?: string;
}

export interface Problem {
  code: ProblemCode;
  source: string;
  message: string;
  where: Location;
  /** Capture times the damage spans, in ms; null when unknown. */
  time: { from: number; until: number } | null;
  /** A second location, for problems that compare two places (the cross-check). */
  also?: Location;
}

export function describeLocation(source: string, where: Location): string {
  const parts = [source];
  if (where.timeline !== undefined) parts.push(`timeline ${where.timeline}`);
  if (where.offsets !== undefined) {
    const { from, until } = where.offsets;
    parts.push(from === until ? `offset ${from}` : `offsets ${from}..${until}`);
  }
  if (where.file !== undefined)
    parts.push(where.fileNo === undefined ? where.file : `aof file ${where.fileNo} ${where.file}`);
  if (where.bytes !== undefined) parts.push(`bytes ${where.bytes.from}..${where.bytes.until}`);
  if (where.key !== undefined) parts.push(`key ${where.key}`);
  return parts.join(' / ');
}
