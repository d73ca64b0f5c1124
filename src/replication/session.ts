import { promises as fs } from 'node:fs';
import type { Socket } from 'node:net';
import type tls from 'node:tls';
import type { OffsetClock } from '../bounds/clock.js';
import type { ImpreciseWindow } from '../bounds/windows.js';
import { RfError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { RedisEndpoint } from '../redis-url.js';
import { openSocket } from '../resp/client.js';
import { encodeCommand } from '../resp/encode.js';
import { FrameScanner, type ScannedFrame } from '../resp/frames.js';
import { Archive } from '../store/archive.js';
import { isGetAck, Kind, kindAt } from '../store/commands.js';
import type { BatchOp, Store } from '../store/store.js';
import { beginTimeline, tmpFile } from '../store/timelines.js';
import type { SegmentMeta, SourceRecord, Timeline } from '../store/types.js';
import { StreamWriter } from '../store/writer.js';
import { isoUtc } from '../time.js';
import { promotedFork } from './fork-check.js';
import { handshake, VALKEY_REPLICA_VERSION } from './handshake.js';
import { receiveRdb } from './rdb-transfer.js';
import { SocketReader } from './reader.js';

export interface SessionOptions {
  endpoint: RedisEndpoint;
  tlsOptions?: tls.ConnectionOptions;
  store: Store;
  source: SourceRecord;
  log: Logger;
  connectTimeoutMs: number;
  /** How long the stream may stay silent; the master pings every repl-ping-replica-period (10 s). */
  readTimeoutMs: number;
  maxSegmentBytes: number;
  flushIntervalMs: number;
  ackIntervalMs: number;
  listeningPort: number;
  onCommit?: (meta: SegmentMeta) => void;
  /** Called once a new base is committed (a full resync). */
  onBase?: (base: { timeline: number; offset: number; takenAt: number }) => void;
  /** The master's offset clock, fed by the daemon: bounds each entry's time (bounds/clock.ts). */
  clock?: OffsetClock;
  /** Records the daemon stores with each commit (the clock's samples): WriterOptions.withCommit. */
  withCommit?: () => BatchOp[];
}

export type SessionPhase = 'connecting' | 'handshake' | 'snapshot' | 'streaming' | 'closed';

export interface SessionStatus {
  phase: SessionPhase;
  timeline: number | null;
  replid: string | null;
  receivedOffset: number | null;
  durableOffset: number | null;
  snapshotBytes: number;
  /**
   * Whether the master answered the handshake with +FULLRESYNC or +CONTINUE: the address and the
   * credentials are good, whatever happens to the connection after.
   */
  accepted: boolean;
  lastReceiveAt: number | null;
  /** Capture time of the last durable entry. */
  lastDurableAt: number | null;
}

class Stopped extends Error {}

/**
 * One replication connection, from connect to disconnect: handshake, the snapshot as a new base
 * (after +FULLRESYNC) or nothing (after +CONTINUE), then the stream into the store. Offsets are
 * acknowledged only once durable. `run` resolves when stopped and rejects when the connection
 * fails; the caller decides whether to reconnect.
 */
export class ReplicationSession {
  private readonly status: SessionStatus = {
    phase: 'connecting',
    timeline: null,
    replid: null,
    receivedOffset: null,
    durableOffset: null,
    snapshotBytes: 0,
    accepted: false,
    lastReceiveAt: null,
    lastDurableAt: null,
  };
  private reader: SocketReader | null = null;
  private stopRequested = false;

  constructor(private readonly options: SessionOptions) {}

  snapshot(): SessionStatus {
    return { ...this.status };
  }

  /** Commits what is buffered, acknowledges it and closes: run() then resolves. */
  stop(): void {
    this.stopRequested = true;
    this.reader?.abort(new Stopped());
  }

  async run(): Promise<void> {
    const { options } = this;
    const { store, log } = options;
    const src = options.source.name;
    const archive = new Archive(store);
    const previous = await archive.state(src);

    const socket = await openSocket(options.endpoint, {
      timeoutMs: options.connectTimeoutMs,
      ...(options.tlsOptions ? { tlsOptions: options.tlsOptions } : {}),
    });
    const peer = `${options.endpoint.host}:${options.endpoint.port}`;
    const reader = new SocketReader(socket, peer);
    this.reader = reader;
    if (this.stopRequested) reader.abort(new Stopped());
    let writer: StreamWriter | null = null;
    let ackTimer: NodeJS.Timeout | undefined;
    let flushTimer: NodeJS.Timeout | undefined;
    let flushError: unknown = null;
    let flushing: Promise<void> | null = null;

    const sendAck = () => {
      if (writer === null || socket.destroyed) return;
      socket.write(encodeCommand(['REPLCONF', 'ACK', String(writer.durableOffset)]));
    };
    const flush = (w: StreamWriter): Promise<void> => {
      if (flushing === null) {
        flushing = w.flush().then(
          () => {
            flushing = null;
            this.status.durableOffset = w.durableOffset;
            this.status.lastDurableAt = w.durableTime;
          },
          (err: unknown) => {
            flushing = null;
            flushError = err;
            reader.abort(err instanceof Error ? err : new Error(String(err)));
          },
        );
      }
      return flushing;
    };

    try {
      this.status.phase = 'handshake';
      const resume =
        previous === undefined
          ? null
          : { replid: previous.replid, offset: previous.durableOffset + 1 };
      const reply = await handshake(socket, reader, {
        endpoint: options.endpoint,
        listeningPort: options.listeningPort,
        resume,
        ...(options.source.server?.name === 'valkey'
          ? { replicaVersion: VALKEY_REPLICA_VERSION }
          : {}),
        timeoutMs: options.readTimeoutMs,
      });
      this.status.accepted = true;

      if (reply.kind === 'continue') {
        if (previous === undefined) {
          throw new RfError(
            'RF_PROTOCOL',
            `${peer} answered +CONTINUE to a request for a full sync`,
            { details: { peer } },
          );
        }
        const timeline = await archive
          .timelines(src)
          .then((all) => all.find((t) => t.id === previous.timeline));
        if (timeline === undefined) {
          throw new RfError(
            'RF_CORRUPT',
            `the store names timeline ${previous.timeline} but does not hold it`,
            {
              details: { source: src, timeline: previous.timeline },
              hint: 'run `rf verify`',
            },
          );
        }
        const lastWindow = await archive.lastImprecise(src, timeline.id);
        writer = new StreamWriter(store, src, timeline, previous, this.writerOptions(lastWindow));
        if (reply.replid !== null) writer.switchReplid(reply.replid);
        log.info(
          { timeline: timeline.id, replid: writer.replid, offset: previous.durableOffset + 1 },
          'partial resync accepted (+CONTINUE): same timeline, no gap',
        );
      } else {
        const takenAt = Date.now();
        log.info(
          { replid: reply.replid, offset: reply.offset, resume },
          'full resync (+FULLRESYNC): receiving a new base',
        );
        this.status.phase = 'snapshot';
        const file = tmpFile(store, 'base');
        let rdb: Awaited<ReturnType<typeof receiveRdb>>;
        try {
          rdb = await receiveRdb(reader, file, options.readTimeoutMs, (n) => {
            this.status.snapshotBytes = n;
          });
        } catch (err) {
          await fs.rm(file, { force: true });
          throw err;
        }
        const fork =
          previous === undefined || previous.replid === reply.replid
            ? null
            : await promotedFork(archive, previous, {
                source: src,
                endpoint: options.endpoint,
                timeoutMs: options.connectTimeoutMs,
                log,
                ...(options.tlsOptions ? { tlsOptions: options.tlsOptions } : {}),
              });
        const started = await beginTimeline(store, options.source, previous, {
          tmpFile: file,
          replid: reply.replid,
          offset: reply.offset,
          takenAt,
          ...rdb,
          ...(fork === null ? {} : { fork }),
        });
        if (fork !== null) log.warn({ fork }, 'the new master lacks writes rf holds: a fork');
        logTimeline(log, started.timeline, rdb.bytes, rdb.transfer, previous?.lastTime);
        options.onBase?.({ timeline: started.timeline.id, offset: reply.offset, takenAt });
        writer = new StreamWriter(
          store,
          src,
          started.timeline,
          started.state,
          this.writerOptions(),
        );
      }

      const w = writer;
      this.status.phase = 'streaming';
      this.status.timeline = w.timelineId;
      this.status.replid = w.replid;
      this.status.durableOffset = w.durableOffset;
      this.status.lastDurableAt = w.durableTime;
      this.status.receivedOffset = w.receivedOffset;
      // A master that sent a diskless snapshot streams nothing until the first ACK after the load.
      sendAck();
      ackTimer = setInterval(sendAck, options.ackIntervalMs);
      flushTimer = setInterval(() => {
        if (w.bufferedBytes > 0) void flush(w);
      }, options.flushIntervalMs);

      // A replication stream has no annotations: the scanner refuses a '#' as a protocol error.
      const scanner = new FrameScanner({ startAt: w.receivedOffset + 1 });
      // While a commit is under way the next segment fills; once it holds two segments' worth,
      // reading waits for the commit. Deeper buffering gains no throughput: it only makes each
      // commit (and its copies in LevelDB) larger, and the daemon's RSS with it.
      const hardLimit = options.maxSegmentBytes * 2;
      let now = 0;
      let getack = false;
      // The hot path: one call per command, nothing allocated but for SELECT and REPLCONF.
      const onFrame = (frame: ScannedFrame) => {
        const kind = kindAt(frame.buf, frame.nameStart, frame.nameLength);
        w.appendFrame(frame, now, kind);
        if (kind === Kind.chatter && frame.nameLength === 8 && isGetAck(frame.args()))
          getack = true;
      };
      for (;;) {
        const chunk = await reader.read(options.readTimeoutMs, 'the replication stream');
        now = Date.now();
        this.status.lastReceiveAt = now;
        getack = false;
        try {
          scanner.scan(chunk, onFrame);
        } finally {
          // The frames before a protocol error are good: keep them, without keeping the chunk.
          w.settle();
        }
        this.status.receivedOffset = w.receivedOffset;
        if (getack) {
          // WAIT asked where we are: answer once what we hold is durable.
          await flush(w);
          if (w.bufferedBytes > 0) await flush(w);
          sendAck();
        } else if (w.full) {
          const pending = flush(w);
          // The master keeps what rf has not read in its replica output buffer meanwhile.
          if (w.bufferedBytes > hardLimit) await pending;
        }
      }
    } catch (err) {
      if (!(err instanceof Stopped)) {
        if (writer !== null && flushError === null)
          await this.drain(writer, flush).catch(() => undefined);
        throw flushError ?? err;
      }
      if (flushError !== null) throw flushError;
      if (writer !== null) {
        await this.drain(writer, flush);
        sendAck();
      }
    } finally {
      clearInterval(ackTimer);
      clearInterval(flushTimer);
      this.status.phase = 'closed';
      await closeSocket(socket);
    }
  }

  private writerOptions(lastWindow?: ImpreciseWindow) {
    const { maxSegmentBytes, log, onCommit, clock, withCommit } = this.options;
    return {
      maxSegmentBytes,
      log,
      ...(onCommit ? { onCommit } : {}),
      ...(clock ? { clock } : {}),
      ...(withCommit ? { withCommit } : {}),
      ...(lastWindow ? { lastWindow } : {}),
    };
  }

  /** Commits everything buffered, waiting for a flush already under way. */
  private async drain(
    writer: StreamWriter,
    flush: (w: StreamWriter) => Promise<void>,
  ): Promise<void> {
    while (writer.bufferedBytes > 0) await flush(writer);
    await flush(writer);
    this.status.durableOffset = writer.durableOffset;
    this.status.lastDurableAt = writer.durableTime;
  }
}

function logTimeline(
  log: Logger,
  t: Timeline,
  bytes: number,
  transfer: string,
  previousLastTime?: number,
): void {
  log.info(
    {
      timeline: t.id,
      replid: t.replid,
      offset: t.baseOffset,
      reason: t.reason,
      baseBytes: bytes,
      transfer,
      ...(previousLastTime === undefined
        ? {}
        : {
            gapFrom: isoUtc(previousLastTime),
            gapUntil: isoUtc(t.startedAt),
          }),
    },
    t.reason === 'initial' ? 'first timeline started from the base' : 'new timeline after a gap',
  );
}

function closeSocket(socket: Socket): Promise<void> {
  if (socket.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      socket.destroy();
      resolve();
    }, 1000);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
    socket.end();
  });
}
