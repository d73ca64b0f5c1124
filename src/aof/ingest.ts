import { createHash, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { isRfError, type RfCode, RfError } from '../errors.js';
import { parseListen } from '../listen-address.js';
import type { Logger } from '../logger.js';
import type { PutResult } from '../store/chunks.js';
import { isValidSourceName } from '../store/keys.js';
import type { Store } from '../store/store.js';
import { atMost, ByteBudget, readBody, readJson, refusal, statusOf } from './ingest-body.js';
import {
  checkBaseOffer,
  checkChunkMeta,
  checkFileRecord,
  checkGap,
  checkSize,
  ingestUsage,
} from './ingest-check.js';
import { LocalSink } from './sink.js';
import {
  BASE_HEADER,
  CHUNK_HEADER,
  decodeHeader,
  parseRoute,
  type Route,
  SHA_TRAILER,
} from './wire.js';

/** The server's certificate (chain) and key. Clients are not asked for certificates: the bearer token is the credential. */
export interface IngestTls {
  cert: string | Buffer;
  key: string | Buffer;
}

/** A bearer token and the sources it may write. Never logged. */
export interface IngestGrant {
  token: string;
  /** Source names, or 'any' (a library caller's choice; the CLI always names them). */
  sources: readonly string[] | 'any';
}

export interface IngestOptions {
  store: Store;
  /** `host:port` (`[::1]:port` for IPv6); `:port` or a bare port is loopback. */
  listen: string;
  /** The tokens requests may carry; a token writes only the sources it names. */
  grants: readonly IngestGrant[];
  tls?: IngestTls;
  log: Logger;
  /**
   * Largest chunk accepted (413 past it), and the most chunk bytes held at once across every
   * request (the others wait, unread): 64 MiB unless given. A chunk is held whole until stored.
   */
  maxChunkBytes?: number;
}

export interface IngestServer {
  readonly host: string;
  readonly port: number;
  /** `http(s)://host:port`, what `rf ship --to` takes. */
  readonly url: string;
  stats(): {
    requests: number;
    chunksStored: number;
    duplicates: number;
    refused: number;
    /** Sources with a sink kept for them. */
    sinks: number;
  };
  /** Stops listening, drops open connections, and waits for requests in progress to settle. */
  close(): Promise<void>;
}

const DEFAULT_MAX_CHUNK = 64 * 1024 * 1024;
/** Connections at once; rf ship uses one per source. */
const MAX_CONNECTIONS = 32;
/** A sender that has not sent its headers by then is not rf ship. */
const HEADERS_TIMEOUT_MS = 10_000;
/** Bytes of a refused request's body read (to let its answer through) before the connection is dropped. */
const DISCARD_BYTES = 1024 * 1024;
/** Sinks kept for sources granted 'any'; an idle one past this is dropped. */
const MAX_SINKS = 64;

const statusFor: Partial<Record<RfCode, number>> = {
  RF_USAGE: 400,
  RF_UNKNOWN_SOURCE: 404,
  RF_CHUNK_CONFLICT: 409,
  RF_CHUNK_ORDER: 409,
  RF_CHECKSUM: 422,
};

/**
 * The receiving end of `rf ship`, run inside `rf listen --ingest`: chunks, bases and file records
 * go into the store through the same writer the local tailer uses, so the same checks hold
 * (checksums, chunks that join up, idempotent puts). A request without the right bearer token is
 * refused before its body is read, and nothing is stored.
 */
export async function startIngestServer(options: IngestOptions): Promise<IngestServer> {
  const { store, log } = options;
  if (options.grants.length === 0 || options.grants.some((g) => g.token === '')) {
    throw new RfError('RF_USAGE', 'the ingest server needs a bearer token', {
      hint: 'give one with --ingest-token-file (or RF_INGEST_TOKEN); rf ship sends it with --token-file',
    });
  }
  const { host, port } = parseListen('--ingest', options.listen);
  const maxChunk = options.maxChunkBytes ?? DEFAULT_MAX_CHUNK;
  const digest = (t: string) => createHash('sha256').update(t).digest();
  const grants = options.grants.map((g) => ({ digest: digest(g.token), sources: g.sources }));
  const budget = new ByteBudget(maxChunk);
  const sinks = new Map<string, { sink: LocalSink; users: number }>();
  const inFlight = new Set<Promise<void>>();
  const counts = { requests: 0, chunksStored: 0, duplicates: 0, refused: 0 };
  let closing = false;

  /** The sources the request's token may write; null for no or a wrong token. */
  const grantOf = (req: http.IncomingMessage): IngestGrant['sources'] | null => {
    const m = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
    if (m === null) return null;
    // Compared as digests: equal lengths, and no timing hint about the token. Every grant is
    // compared, so the time taken does not tell which one matched.
    const given = digest(m[1]!);
    let found: IngestGrant['sources'] | null = null;
    for (const g of grants)
      if (timingSafeEqual(given, g.digest) && found === null) found = g.sources;
    return found;
  };

  /** The source's sink, held until `release`; at most MAX_SINKS idle ones are kept. */
  const sinkFor = (source: string, req: http.IncomingMessage): LocalSink => {
    let entry = sinks.get(source);
    if (entry === undefined) {
      if (sinks.size >= MAX_SINKS) {
        for (const [name, e] of sinks) {
          if (e.users === 0) {
            sinks.delete(name);
            break;
          }
        }
      }
      const origin = `aof-ship://${req.socket.remoteAddress ?? 'unknown'}`;
      entry = { sink: new LocalSink(store, source, origin), users: 0 };
      sinks.set(source, entry);
    }
    entry.users++;
    return entry.sink;
  };
  const release = (source: string) => {
    const entry = sinks.get(source);
    if (entry !== undefined) entry.users--;
  };

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    counts.requests++;
    const url = new URL(req.url ?? '/', 'http://ingest');
    const route = parseRoute(url.pathname);
    try {
      if (closing) throw new RfError('RF_INGEST', 'the ingest server is stopping');
      const granted = grantOf(req);
      if (granted === null) {
        throw refusal(
          401,
          new RfError('RF_AUTH', 'missing or wrong bearer token', {
            hint: 'rf ship --token-file must hold a token of the receiver’s --ingest-token-file',
          }),
        );
      }
      if (route === null) throw ingestUsage(`no such endpoint: ${req.method} ${url.pathname}`);
      if (!isValidSourceName(route.source))
        throw ingestUsage(`invalid source name ${JSON.stringify(route.source)}`);
      if (granted !== 'any' && !granted.includes(route.source)) {
        throw refusal(
          403,
          new RfError('RF_AUTH', `this token may not write the source ${route.source}`, {
            details: { source: route.source },
            hint: 'give the source its own line `<source> <token>` in the receiver’s --ingest-token-file, and rf ship that token',
          }),
        );
      }
      const sink = sinkFor(route.source, req);
      try {
        const reply = await dispatch(route, req, sink);
        send(res, reply.status, reply.body);
      } finally {
        release(route.source);
      }
    } catch (err) {
      const rf = isRfError(err) ? err : null;
      const status =
        rf === null
          ? 500
          : (statusOf.get(rf) ?? statusFor[rf.code] ?? (rf.code === 'RF_INGEST' ? 503 : 500));
      if (rf === null && (req.destroyed || !req.complete))
        // The sender went away mid-request (stopped, killed, network): it sends again.
        log.warn(
          { route: route?.kind, source: route?.source, peer: req.socket.remoteAddress },
          'ingest request aborted by the sender',
        );
      else if (rf === null || status >= 500)
        log.error(
          { err: rf?.toJSON() ?? { message: String(err) }, route },
          'ingest request failed',
        );
      else
        log.warn(
          {
            err: rf.toJSON(),
            route: route?.kind,
            source: route?.source,
            peer: req.socket.remoteAddress,
          },
          'ingest request refused',
        );
      counts.refused++;
      // The body may be unread (a refused token, a bad header): the connection is not reused,
      // and past a little of it, not read any further.
      if (!req.complete) {
        res.setHeader('connection', 'close');
        let discarded = 0;
        req.on('data', (piece: Buffer) => {
          discarded += piece.length;
          if (discarded > DISCARD_BYTES) req.socket.destroy();
        });
      }
      send(res, status, {
        error: rf?.toJSON() ?? { code: 'RF_INTERNAL', message: 'internal error' },
      });
      req.resume();
    }
  };

  const dispatch = async (
    route: Route,
    req: http.IncomingMessage,
    sink: LocalSink,
  ): Promise<{ status: number; body: unknown }> => {
    const method = req.method ?? 'GET';
    if (route.kind === 'held') {
      if (method !== 'GET') throw ingestUsage('held takes GET');
      return { status: 200, body: await sink.held() };
    }
    if (method !== 'PUT') throw ingestUsage(`${route.kind} takes PUT`);
    switch (route.kind) {
      case 'file': {
        const record = checkFileRecord(await readJson(req), route.fileNo);
        return { status: 200, body: { file: await sink.putFile(record) } };
      }
      case 'chunk': {
        const meta = checkChunkMeta(
          decodeHeader(req.headers[CHUNK_HEADER]),
          route.fileNo,
          route.start,
        );
        const length = meta.end - meta.start;
        if (length > maxChunk) {
          throw refusal(
            413,
            new RfError(
              'RF_USAGE',
              `a chunk of ${length} bytes is larger than the ${maxChunk} this receiver takes`,
              {
                details: { bytes: length, max: maxChunk },
                hint: "keep rf ship's --chunk-size under the receiver's --ingest-max-chunk, or raise that (a single command larger than it needs a larger one)",
              },
            ),
          );
        }
        // Held whole until stored: what every request holds at once stays within one chunk cap,
        // and a request waiting for room is not read meanwhile.
        await budget.take(length);
        let data: Buffer;
        let result: PutResult;
        try {
          data = await readBody(req, length);
          result = await sink.putChunk(meta, data);
        } finally {
          budget.give(length);
        }
        if (result === 'stored') counts.chunksStored++;
        else counts.duplicates++;
        log.debug(
          {
            source: route.source,
            chunk: `${meta.fileNo}:${meta.start}`,
            bytes: data.length,
            result,
          },
          'chunk ingested',
        );
        return { status: result === 'stored' ? 201 : 200, body: { result } };
      }
      case 'base': {
        const offer = checkBaseOffer(decodeHeader(req.headers[BASE_HEADER]), route.fileNo);
        const declared = Number(req.headers['content-length']);
        if (Number.isFinite(declared) && declared > offer.bytes) {
          throw refusal(
            413,
            ingestUsage(`a body of ${declared} bytes for a base of ${offer.bytes}`),
          );
        }
        const sha256 = new Promise<string>((resolve, reject) => {
          req.once('end', () => {
            const sha = req.trailers[SHA_TRAILER];
            if (typeof sha === 'string') resolve(sha);
            else reject(ingestUsage(`the base arrived without its ${SHA_TRAILER} trailer`));
          });
          req.once('error', reject);
        });
        sha256.catch(() => undefined);
        const result = await sink.putBase(
          offer,
          offer.bytes === 0 ? null : () => ({ stream: req.pipe(atMost(offer.bytes)), sha256 }),
        );
        log.info(
          {
            source: route.source,
            base: offer.name,
            fileNo: offer.fileNo,
            bytes: offer.bytes,
            result,
          },
          'AOF base ingested',
        );
        return { status: result === 'stored' ? 201 : 200, body: { result } };
      }
      case 'gap': {
        await sink.putGap(checkGap(await readJson(req), route.fileNo, route.start));
        return { status: 200, body: { result: 'stored' } };
      }
      case 'size': {
        await sink.putSize(checkSize(await readJson(req)));
        return { status: 200, body: { result: 'stored' } };
      }
    }
  };

  const onRequest = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const p = handle(req, res).finally(() => inFlight.delete(p));
    inFlight.add(p);
  };
  // Past maxConnections a connection waits unaccepted until one closes: a peer that sends no
  // headers is closed within HEADERS_TIMEOUT_MS (checked every second, not every 30 s).
  const serving = { connectionsCheckingInterval: 1_000 };
  const server = options.tls
    ? https.createServer({ ...serving, cert: options.tls.cert, key: options.tls.key }, onRequest)
    : http.createServer(serving, onRequest);
  server.keepAliveTimeout = 30_000;
  server.headersTimeout = HEADERS_TIMEOUT_MS;
  server.maxConnections = MAX_CONNECTIONS;

  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) =>
      reject(
        new RfError('RF_USAGE', `cannot listen on ${options.listen}: ${err.message}`, {
          details: { listen: options.listen },
          hint: 'choose a free port for --ingest, or stop what holds this one',
          cause: err,
        }),
      ),
    );
    server.listen(port, host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  const scheme = options.tls ? 'https' : 'http';
  const shownHost = address.address.includes(':') ? `[${address.address}]` : address.address;
  log.info(
    { listen: `${shownHost}:${address.port}`, tls: options.tls !== undefined },
    'AOF ingest listening',
  );

  return {
    host: address.address,
    port: address.port,
    url: `${scheme}://${shownHost}:${address.port}`,
    stats: () => ({ ...counts, sinks: sinks.size }),
    close: async () => {
      closing = true;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
      await Promise.allSettled([...inFlight]);
    },
  };
}

function send(res: http.ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}
