/** Why a timeline began: every timeline after the first one follows a gap. */
export type TimelineReason = 'initial' | 'replid-changed' | 'offset-not-in-backlog' | 'full-resync';

export interface Timeline {
  id: number;
  /** The replication id the master uses now (it changes after a failover, see `replids`). */
  replid: string;
  /** Every replid this timeline has followed, with the first offset streamed under it. */
  replids: { replid: string; from: number }[];
  /** The offset of the base that starts this timeline: its first stream byte is baseOffset + 1. */
  baseOffset: number;
  /** When the master announced the snapshot (+FULLRESYNC): the moment the base stands for. */
  startedAt: number;
  reason: TimelineReason;
  /** Last offset committed in this timeline (== baseOffset until a write arrives). */
  durableOffset: number;
  /** Capture time of the last committed entry, or startedAt. */
  lastTime: number;
  segments: number;
  bytes: number;
  /**
   * Set when this timeline began because the new master could not continue the previous one: it
   * never got writes rf already held (a master killed before its replica had them).
   */
  fork?: TimelineFork;
}

/** Writes rf holds on the previous timeline that the master it follows now never had. */
export interface TimelineFork {
  /** The timeline that holds them: the one before this. */
  timeline: number;
  replid: string;
  /** The new master's `second_repl_offset`: the first offset of the old replid it lacks. */
  fromOffset: number;
  /** rf's durable offset on the old timeline: the last byte the new master lacks. */
  untilOffset: number;
  /** Capture times of the first and the last entry in that range. */
  from: number;
  until: number;
  /** Entries in the range that change data (PINGs count in offsets, not here). */
  writes: number;
  /** The new master, `host:port`. */
  master: string;
}

export interface BaseMeta {
  timeline: number;
  /** The snapshot holds every write up to and including this offset. */
  offset: number;
  replid: string;
  /** Path relative to the store directory. */
  file: string;
  bytes: number;
  sha256: string;
  /** RDB format version, from the file's header (REDIS0010 for Redis 7.0). */
  rdbVersion: number;
  /** The +FULLRESYNC arrival: the instant the base stands for. */
  takenAt: number;
  completedAt: number;
  /** 'rolled': built by rf itself off the master, from an older base and the stream after it. */
  via: 'full-sync' | 'rdb-only' | 'rolled';
  /** The framing the master used for the transfer ('disk' for a rolled base: a SAVE). */
  transfer: 'disk' | 'diskless';
  /** Only for a rolled base: what it was built from, and the dataset's digest. */
  rolled?: RolledFrom;
}

/** How rf built a base itself (rf compact): an older base plus the stream up to its offset. */
export interface RolledFrom {
  builtBy: 'rf';
  /** The offset of the base it was rolled forward from. */
  fromOffset: number;
  /** `DEBUG DIGEST` of the scratch redis-server holding the dataset, as it saved it. */
  digest: string;
  /** The redis-server version that built it. */
  redisVersion: string;
}

export interface SegmentMeta {
  timeline: number;
  /** Offset of the first byte of the first entry. */
  start: number;
  /** Offset of the last byte of the last entry. */
  end: number;
  firstTime: number;
  lastTime: number;
  count: number;
  /** Entries that change data (everything but PING and REPLCONF). */
  writes: number;
  /**
   * Entries a restore skips (PING, REPLCONF, PUBLISH). Zero lets a restore copy the segment's
   * frames whole; absent in segments written before it was recorded.
   */
  chatter?: number;
  /** CRC-32 of the stored data value. */
  crc: number;
  /** The db selected before the first entry. */
  db: number;
  /** Start offset of a MULTI still open before the first entry, or null. */
  multiAt: number | null;
}

/** Where capture resumes: committed in the same batch as the segment that moves it. */
export interface DurableState {
  timeline: number;
  replid: string;
  durableOffset: number;
  db: number;
  multiAt: number | null;
  lastTime: number;
}

export interface Entry {
  /** Offset of the entry's first byte. */
  offset: number;
  time: number;
  /** The exact RESP bytes as the master sent them. */
  bytes: Buffer;
}

/** What the master said it is (INFO server), recorded at capture: a restore's layout follows it. */
export interface ServerInfo {
  /** `server_name` (Valkey 8 says valkey), else redis. */
  name: string;
  /** Its own version: `valkey_version` for Valkey, `redis_version` for Redis. */
  version: string;
  /** `redis_version` as reported: Valkey 8 keeps 7.2.4 there for clients that read it. */
  redisVersion: string;
  /** `redis_mode`: standalone, cluster or sentinel. */
  mode: string;
  /** When rf last read it. */
  seenAt: number;
}

export interface SourceRecord {
  name: string;
  /** The source URL with any password removed. */
  url: string;
  createdAt: number;
  /** The master's INFO server as of the last time rf listen connected (absent in older stores). */
  server?: ServerInfo;
}

/** What retention last did, for `rf info`. */
export interface RetentionRecord {
  retainMs: number;
  /** Restores at or after this instant keep working. */
  windowStart: number;
  prunedAt: number;
}

/**
 * The master's own offset, sampled at `time`, was no further than `offset`, which was durable:
 * nothing the master wrote before `time` is missing from the timeline.
 */
export interface SeenRecord {
  timeline: number;
  offset: number;
  time: number;
}
