import { promises as fs } from 'node:fs';
import type tls from 'node:tls';
import { RfError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { RedisEndpoint } from '../redis-url.js';
import { openSocket } from '../resp/client.js';
import { keys } from '../store/keys.js';
import type { Store } from '../store/store.js';
import { addBase, tmpFile } from '../store/timelines.js';
import type { BaseMeta } from '../store/types.js';
import { handshake } from './handshake.js';
import { receiveRdb } from './rdb-transfer.js';
import { SocketReader } from './reader.js';

export interface FreshBaseOptions {
  endpoint: RedisEndpoint;
  tlsOptions?: tls.ConnectionOptions;
  store: Store;
  source: string;
  /** The timeline being captured: the new base belongs to it only if the replid matches. */
  timeline: { id: number; replid: string };
  connectTimeoutMs: number;
  readTimeoutMs: number;
  log: Logger;
  /** Aborting drops the transfer (rf listen is stopping). */
  signal?: AbortSignal;
}

/**
 * Takes a new base without touching the running stream: a second connection asks for a
 * snapshot only (REPLCONF rdb-only 1, Redis 7.0+; the master adds no replication buffer for
 * it). The +FULLRESYNC offset places the snapshot in the stream the main connection already
 * archives, so a restore after it replays from there instead of from the timeline's start.
 */
export async function takeFreshBase(options: FreshBaseOptions): Promise<BaseMeta | null> {
  const { store, log } = options;
  const socket = await openSocket(options.endpoint, {
    timeoutMs: options.connectTimeoutMs,
    ...(options.tlsOptions ? { tlsOptions: options.tlsOptions } : {}),
  });
  const reader = new SocketReader(socket, `${options.endpoint.host}:${options.endpoint.port}`);
  const abort = () => socket.destroy();
  options.signal?.addEventListener('abort', abort, { once: true });
  const file = tmpFile(store, 'fresh-base');
  try {
    const reply = await handshake(socket, reader, {
      endpoint: options.endpoint,
      listeningPort: 0,
      resume: null,
      rdbOnly: true,
      timeoutMs: options.readTimeoutMs,
    });
    if (reply.kind !== 'full') {
      throw new RfError('RF_PROTOCOL', 'the master answered an rdb-only sync with +CONTINUE', {
        details: { reply },
      });
    }
    const takenAt = Date.now();
    const rdb = await receiveRdb(reader, file, options.readTimeoutMs);
    socket.destroy();
    if (reply.replid !== options.timeline.replid) {
      log.warn(
        { replid: reply.replid, timelineReplid: options.timeline.replid },
        'fresh base discarded: the master changed replid while it was taken',
      );
      await fs.rm(file, { force: true });
      return null;
    }
    // The master's offset has not moved since the last base: that base already stands for this
    // state, and replacing its file under a running restore would break the restore.
    const existing = await store.get(keys.base(options.source, options.timeline.id, reply.offset));
    if (existing !== undefined) {
      log.debug({ offset: reply.offset }, 'fresh base skipped: a base at this offset exists');
      await fs.rm(file, { force: true });
      return null;
    }
    const meta = await addBase(store, options.source, options.timeline.id, {
      tmpFile: file,
      replid: reply.replid,
      offset: reply.offset,
      takenAt,
      ...rdb,
    });
    log.info(
      { timeline: meta.timeline, offset: meta.offset, bytes: meta.bytes },
      'fresh base taken',
    );
    return meta;
  } catch (err) {
    await fs.rm(file, { force: true });
    throw err;
  } finally {
    options.signal?.removeEventListener('abort', abort);
    socket.destroy();
  }
}
