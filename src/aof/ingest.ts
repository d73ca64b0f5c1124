import { createHash, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { isRfError, type RfCode, RfError } from '../errors.js';
import type { Logger } from '../logger.js';
import type {
  AofChunkMeta,
  AofFileRecord,
  AofGap,
  AofSizeSample,
  BaseOffer,
} from '../store/chunks.js';
import { isValidSourceName } from '../store/keys.js';
import type { Store } from '../store/store.js';
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

export interface IngestOptions {
  store: Store;
  /** `host:port` (`[::1]:port` for IPv6, `:port` or a bare port for every interface). */
  listen: string;
  /** The bearer token every request must carry. Never logged. */
  token: string;
  tls?: IngestTls;
  log: Logger;
  /** Largest chunk accepted; 1 GiB unless given (a chunk may be one large command). */
  maxChunkBytes?: number;
}

export interface IngestServer {
  readonly host: string;
  readonly port: number;
  /** `http(s)://host:port`, what `rf ship --to` takes. */
  readonly url: string;
  stats(): { requests: number; chunksStored: number; duplicates: number; refused: number };
  /** Stops listening, drops open connections, and waits for requests in progress to settle. */
  close(): Promise<void>;
}

const MAX_JSON = 1024 * 1024;
const DEFAULT_MAX_CHUNK = 1024 ** 3;

const statusFor: Partial<Record<RfCode, number>> = {
  RF_AUTH: 401,
  RF_USAGE: 400,
  RF_UNKNOWN_SOURCE: 404,
  RF_CHUNK_CONFLICT: 409,
  RF_CHUNK_ORDER: 409,
  RF_CHECKSUM: 422,
};

/** Parses `host:port`, `[v6]:port`, `:port` or `port`. RF_USAGE when it is none of them. */
export function parseListen(flag: string, value: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(value) ?? /^()()(\d{1,5})$/.exec(value);
  const port = Number(m?.[3]);
  if (m === null || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new RfError('RF_USAGE', `${flag} takes host:port, got ${JSON.stringify(value)}`, {
      details: { flag, value },
      hint: `for example ${flag} 0.0.0.0:7379 or ${flag} 127.0.0.1:7379`,
    });
  }
  return { host: m[1] || m[2] || '0.0.0.0', port };
}

/**
 * The receiving end of `rf ship`, run inside `rf listen --ingest`: chunks, bases and file records
 * go into the store through the same writer the local tailer uses, so the same checks hold
 * (checksums, chunks that join up, idempotent puts). A request without the right bearer token is
 * refused before its body is read, and nothing is stored.
 */
export async function startIngestServer(options: IngestOptions): Promise<IngestServer> {
  const { store, log } = options;
  if (options.token === '') {
    throw new RfError('RF_USAGE', 'the ingest server needs a bearer token', {
      hint: 'give one with --ingest-token (or RF_INGEST_TOKEN); rf ship sends it with --token',
    });
  }
  const { host, port } = parseListen('--ingest', options.listen);
  const maxChunk = options.maxChunkBytes ?? DEFAULT_MAX_CHUNK;
  const expected = createHash('sha256').update(options.token).digest();
  const sinks = new Map<string, LocalSink>();
  const inFlight = new Set<Promise<void>>();
  const counts = { requests: 0, chunksStored: 0, duplicates: 0, refused: 0 };
  let closing = false;

  const authorized = (req: http.IncomingMessage): boolean => {
    const m = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
    if (m === null) return false;
    // Compared as digests: equal lengths, and no timing hint about the token.
    return timingSafeEqual(createHash('sha256').update(m[1]!).digest(), expected);
  };

  const sinkFor = (source: string, req: http.IncomingMessage): LocalSink => {
    let sink = sinks.get(source);
    if (sink === undefined) {
      sink = new LocalSink(store, source, `aof-ship://${req.socket.remoteAddress ?? 'unknown'}`);
      sinks.set(source, sink);
    }
    return sink;
  };

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    counts.requests++;
    const url = new URL(req.url ?? '/', 'http://ingest');
    const route = parseRoute(url.pathname);
    try {
      if (closing) throw new RfError('RF_INGEST', 'the ingest server is stopping');
      if (!authorized(req)) {
        throw new RfError('RF_AUTH', 'missing or wrong bearer token', {
          hint: 'rf ship --token must match the receiver’s --ingest-token',
        });
      }
      if (route === null) throw usage(`no such endpoint: ${req.method} ${url.pathname}`);
      if (!isValidSourceName(route.source))
        throw usage(`invalid source name ${JSON.stringify(route.source)}`);
      const reply = await dispatch(route, req, sinkFor(route.source, req));
      send(res, reply.status, reply.body);
    } catch (err) {
      const rf = isRfError(err) ? err : null;
      const status =
        rf === null ? 500 : (statusFor[rf.code] ?? (rf.code === 'RF_INGEST' ? 503 : 500));
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
      // The body may be unread (a refused token, a bad header): the connection is not reused.
      if (!req.complete) res.setHeader('connection', 'close');
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
      if (method !== 'GET') throw usage('held takes GET');
      return { status: 200, body: await sink.held() };
    }
    if (method !== 'PUT') throw usage(`${route.kind} takes PUT`);
    switch (route.kind) {
      case 'file': {
        const record = await readJson<AofFileRecord>(req);
        if (
          !isObject(record) ||
          record.fileNo !== route.fileNo ||
          typeof record.name !== 'string' ||
          !isWhole(record.seq) ||
          !isWhole(record.ino) ||
          !isWhole(record.chunkStart)
        ) {
          throw usage('the file record does not match its path or is incomplete');
        }
        return { status: 200, body: { file: await sink.putFile(record) } };
      }
      case 'chunk': {
        const meta = decodeHeader<AofChunkMeta>(req.headers[CHUNK_HEADER]);
        if (
          !isObject(meta) ||
          meta.fileNo !== route.fileNo ||
          meta.start !== route.start ||
          !isWhole(meta.end) ||
          meta.end <= meta.start ||
          typeof meta.sha256 !== 'string'
        ) {
          throw usage(
            `the ${CHUNK_HEADER} header is missing, malformed or does not match the path`,
          );
        }
        const data = await readBody(req, Math.min(maxChunk, meta.end - meta.start + 1));
        const result = await sink.putChunk(meta, data);
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
        const offer = decodeHeader<BaseOffer>(req.headers[BASE_HEADER]);
        if (
          !isObject(offer) ||
          offer.fileNo !== route.fileNo ||
          !isWhole(offer.bytes) ||
          typeof offer.name !== 'string'
        ) {
          throw usage(`the ${BASE_HEADER} header is missing, malformed or does not match the path`);
        }
        const sha256 = new Promise<string>((resolve, reject) => {
          req.once('end', () => {
            const sha = req.trailers[SHA_TRAILER];
            if (typeof sha === 'string') resolve(sha);
            else reject(usage(`the base arrived without its ${SHA_TRAILER} trailer`));
          });
          req.once('error', reject);
        });
        sha256.catch(() => undefined);
        const result = await sink.putBase(
          offer,
          offer.bytes === 0 ? null : () => ({ stream: req, sha256 }),
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
        const gap = await readJson<AofGap>(req);
        if (!isObject(gap) || gap.fileNo !== route.fileNo || gap.start !== route.start)
          throw usage('the gap does not match its path');
        await sink.putGap(gap);
        return { status: 200, body: { result: 'stored' } };
      }
      case 'size': {
        const sample = await readJson<AofSizeSample>(req);
        if (!isObject(sample) || !isWhole(sample.bytes) || !isWhole(sample.at))
          throw usage('malformed size sample');
        await sink.putSize(sample);
        return { status: 200, body: { result: 'stored' } };
      }
    }
  };

  const onRequest = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const p = handle(req, res).finally(() => inFlight.delete(p));
    inFlight.add(p);
  };
  const server = options.tls
    ? https.createServer({ cert: options.tls.cert, key: options.tls.key }, onRequest)
    : http.createServer(onRequest);
  server.keepAliveTimeout = 30_000;

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
    stats: () => ({ ...counts }),
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

function usage(message: string): RfError {
  return new RfError('RF_USAGE', message, {
    hint: 'rf ship and rf listen --ingest must be the same rf version',
  });
}

function isObject<T>(x: T | undefined | null): x is T {
  return typeof x === 'object' && x !== null;
}

function isWhole(x: unknown): boolean {
  return typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
}

async function readBody(req: http.IncomingMessage, max: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > max)
    throw usage(`body of ${declared} bytes is larger than the ${max} allowed`);
  const parts: Buffer[] = [];
  let total = 0;
  for await (const piece of req as AsyncIterable<Buffer>) {
    total += piece.length;
    if (total > max) throw usage(`body larger than the ${max} bytes allowed`);
    parts.push(piece);
  }
  return Buffer.concat(parts, total);
}

async function readJson<T>(req: http.IncomingMessage): Promise<T> {
  const body = await readBody(req, MAX_JSON);
  try {
    return JSON.parse(body.toString('utf8')) as T;
  } catch {
    throw usage('the body is not JSON');
  }
}
