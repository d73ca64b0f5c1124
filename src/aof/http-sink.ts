import { once } from 'node:events';
import http from 'node:http';
import https from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';
import { Backoff } from '../backoff.js';
import { errnoCode, isRfError, type RfCode, RfError } from '../errors.js';
import type { Logger } from '../logger.js';
import type {
  AofChunkMeta,
  AofFileRecord,
  AofGap,
  AofSizeSample,
  BaseBody,
  BaseOffer,
  PutResult,
} from '../store/chunks.js';
import type { AofSink, HeldState } from './sink.js';
import { BASE_HEADER, CHUNK_HEADER, encodeHeader, paths, SHA_TRAILER } from './wire.js';

export interface HttpSinkOptions {
  /** `http(s)://host:port` of `rf listen --ingest`. */
  url: string;
  /** Sent as `Authorization: Bearer …`; never logged. */
  token: string;
  source: string;
  log: Logger;
  /** CA for an https receiver with its own certificate authority. */
  ca?: string | Buffer;
  /** How long a request may stay silent; 30 s unless given. */
  timeoutMs?: number;
  /** Longest wait between retries; 30 s unless given. */
  maxRetryDelayMs?: number;
  /**
   * Until the receiver has answered once, give up after this long (RF_INGEST): at start, an
   * unreachable receiver is more likely a wrong --to than an outage. Unset: retry for ever.
   */
  startupDeadlineMs?: number;
}

/** Checksum mismatches are retried this often (the bytes changed on the way), then reported. */
const CHECKSUM_RETRIES = 3;

class Transient extends Error {}

interface Reply {
  status: number;
  body: unknown;
}

/**
 * `rf ship`'s sink: puts over HTTP(S) to `rf listen --ingest`. A receiver that is down, restarting
 * or overloaded (connection refused or reset, timeouts, 5xx) is retried with backoff until it
 * answers, for as long as the shipper runs; the puts are idempotent, so a put whose answer was
 * lost is simply sent again. A refusal (wrong token, conflicting chunk) is not retried.
 */
export class HttpSink implements AofSink {
  private readonly base: URL;
  private readonly agent: http.Agent;
  private readonly timeoutMs: number;
  private readonly backoff: Backoff;
  private readonly abort = new AbortController();
  private closed = false;
  private lastWarnAt = 0;
  private reached = false;
  private readonly startedAt = Date.now();

  constructor(private readonly options: HttpSinkOptions) {
    this.base = parseReceiverUrl(options.url);
    const secure = this.base.protocol === 'https:';
    this.agent = secure
      ? new https.Agent({ keepAlive: true, ...(options.ca ? { ca: options.ca } : {}) })
      : new http.Agent({ keepAlive: true });
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.backoff = new Backoff(200, options.maxRetryDelayMs ?? 30_000);
  }

  async held(): Promise<HeldState> {
    const reply = await this.retrying('read what the receiver holds', () =>
      this.request('GET', paths.held(this.options.source)),
    );
    return reply.body as HeldState;
  }

  async putFile(record: AofFileRecord): Promise<AofFileRecord> {
    const body = Buffer.from(JSON.stringify(record));
    const reply = await this.retrying(`record file ${record.name}`, () =>
      this.request(
        'PUT',
        paths.file(this.options.source, record.fileNo),
        { 'content-type': 'application/json' },
        body,
      ),
    );
    return (reply.body as { file: AofFileRecord }).file;
  }

  async putChunk(meta: AofChunkMeta, data: Buffer): Promise<PutResult> {
    const headers = {
      'content-type': 'application/octet-stream',
      [CHUNK_HEADER]: encodeHeader(meta),
    };
    const reply = await this.retrying(`send chunk ${meta.fileNo}:${meta.start}`, () =>
      this.request('PUT', paths.chunk(this.options.source, meta.fileNo, meta.start), headers, data),
    );
    return (reply.body as { result: PutResult }).result;
  }

  async putBase(meta: BaseOffer, open: (() => BaseBody) | null): Promise<PutResult> {
    const headers = {
      'content-type': 'application/octet-stream',
      [BASE_HEADER]: encodeHeader(meta),
    };
    const reply = await this.retrying(`send base ${meta.name}`, () =>
      open === null
        ? this.request(
            'PUT',
            paths.base(this.options.source, meta.fileNo),
            headers,
            Buffer.alloc(0),
          )
        : this.request('PUT', paths.base(this.options.source, meta.fileNo), headers, open()),
    );
    return (reply.body as { result: PutResult }).result;
  }

  async putGap(gap: AofGap): Promise<void> {
    const body = Buffer.from(JSON.stringify(gap));
    await this.retrying('record a gap', () =>
      this.request(
        'PUT',
        paths.gap(this.options.source, gap.fileNo, gap.start),
        { 'content-type': 'application/json' },
        body,
      ),
    );
  }

  async putSize(sample: AofSizeSample): Promise<void> {
    // One try: the next sample follows in a second.
    const reply = await this.request(
      'PUT',
      paths.size(this.options.source),
      { 'content-type': 'application/json' },
      Buffer.from(JSON.stringify(sample)),
    );
    if (reply.status !== 200) throw this.refusal(reply, 'record the AOF size');
  }

  async close(): Promise<void> {
    this.closed = true;
    this.abort.abort();
    this.agent.destroy();
  }

  private async retrying(what: string, attempt: () => Promise<Reply>): Promise<Reply> {
    let checksumFailures = 0;
    for (;;) {
      if (this.closed) throw stopped();
      let reply: Reply;
      try {
        reply = await attempt();
      } catch (err) {
        if (this.closed) throw stopped();
        if (!(err instanceof Transient) && isRfError(err)) throw err;
        await this.wait(what, (err as Error).message);
        continue;
      }
      this.reached = true;
      if (reply.status >= 200 && reply.status < 300) {
        this.backoff.reset();
        return reply;
      }
      if (reply.status >= 500 || reply.status === 408 || reply.status === 429) {
        await this.wait(what, `HTTP ${reply.status}`);
        continue;
      }
      const error = this.refusal(reply, what);
      if (error.code === 'RF_CHECKSUM' && ++checksumFailures < CHECKSUM_RETRIES) {
        this.options.log.warn(
          { err: error.toJSON() },
          'the receiver got other bytes than were sent; sending again',
        );
        continue;
      }
      throw error;
    }
  }

  private async wait(what: string, why: string): Promise<void> {
    const deadline = this.options.startupDeadlineMs;
    if (!this.reached && deadline !== undefined && Date.now() - this.startedAt > deadline) {
      throw new RfError('RF_INGEST', `cannot reach the receiver ${this.base.origin}: ${why}`, {
        details: { receiver: this.base.origin, why, waitedMs: Date.now() - this.startedAt },
        hint: 'check --to, and that `rf listen --ingest host:port` runs there and the port is open',
      });
    }
    const delay = this.backoff.next();
    const now = Date.now();
    // One warning per 10 s while the receiver stays away, not one per attempt.
    if (now - this.lastWarnAt > 10_000) {
      this.lastWarnAt = now;
      this.options.log.warn(
        { receiver: this.base.origin, why, retryInMs: delay },
        `cannot ${what}: the receiver is unreachable or busy; retrying`,
      );
    }
    await sleep(delay, undefined, { signal: this.abort.signal }).catch(() => undefined);
  }

  private refusal(reply: Reply, what: string): RfError {
    const error = (
      reply.body as {
        error?: {
          code?: string;
          message?: string;
          details?: Record<string, unknown>;
          hint?: string;
        };
      } | null
    )?.error;
    const code = (error?.code ?? 'RF_INGEST') as RfCode;
    if (reply.status === 401) {
      return new RfError(
        'RF_AUTH',
        `the receiver ${this.base.origin} refused the token (cannot ${what})`,
        {
          details: { receiver: this.base.origin, status: reply.status },
          hint: 'rf ship --token (or RF_TOKEN) must equal the --ingest-token of the rf listen it ships to',
        },
      );
    }
    return new RfError(
      code,
      `the receiver ${this.base.origin} refused to ${what}: ${error?.message ?? `HTTP ${reply.status}`}`,
      {
        details: { receiver: this.base.origin, status: reply.status, ...(error?.details ?? {}) },
        ...(error?.hint ? { hint: error.hint } : {}),
      },
    );
  }

  /**
   * One request. A Buffer body is sent with its length; a BaseBody streams chunked, and its
   * checksum goes last, as a trailer, once every byte is out. Network failures are Transient.
   */
  private request(
    method: string,
    path: string,
    headers: Record<string, string> = {},
    body?: Buffer | BaseBody,
  ): Promise<Reply> {
    return new Promise<Reply>((resolve, reject) => {
      const streaming = body !== undefined && !Buffer.isBuffer(body);
      const req = (this.base.protocol === 'https:' ? https : http).request(
        new URL(path, this.base),
        {
          method,
          agent: this.agent,
          headers: {
            ...headers,
            authorization: `Bearer ${this.options.token}`,
            ...(Buffer.isBuffer(body) ? { 'content-length': String(body.length) } : {}),
            ...(streaming ? { trailer: SHA_TRAILER } : {}),
          },
        },
        (res) => {
          const parts: Buffer[] = [];
          res.on('data', (d: Buffer) => parts.push(d));
          res.on('error', (err) => reject(new Transient(err.message)));
          res.on('end', () => {
            const text = Buffer.concat(parts).toString('utf8');
            let parsed: unknown = null;
            try {
              parsed = text === '' ? null : JSON.parse(text);
            } catch {
              parsed = null;
            }
            resolve({ status: res.statusCode ?? 0, body: parsed });
          });
        },
      );
      req.setTimeout(this.timeoutMs, () =>
        req.destroy(new Error(`no answer within ${this.timeoutMs} ms`)),
      );
      req.on('error', (err) =>
        reject(new Transient(`${errnoCode(err) ?? ''} ${err.message}`.trim())),
      );
      if (!streaming) {
        req.end(body);
        return;
      }
      const upload = body as BaseBody;
      void (async () => {
        for await (const piece of upload.stream as AsyncIterable<Buffer>) {
          if (req.destroyed) return;
          if (!req.write(piece)) await once(req, 'drain');
        }
        req.addTrailers({ [SHA_TRAILER]: await upload.sha256 });
        req.end();
      })().catch((err: unknown) => {
        // A failure reading the file is the shipper's, not the network's: report it as it is.
        req.destroy();
        reject(isRfError(err) ? err : new Transient((err as Error).message));
      });
    });
  }
}

function stopped(): RfError {
  return new RfError('RF_INGEST', 'the shipper is stopping', {});
}

export function parseReceiverUrl(url: string): URL {
  let parsed: URL | null = null;
  try {
    parsed = new URL(url);
  } catch {
    parsed = null;
  }
  if (
    parsed === null ||
    (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') ||
    parsed.hostname === ''
  ) {
    throw new RfError(
      'RF_USAGE',
      `--to takes http://host:port or https://host:port, got ${JSON.stringify(url)}`,
      {
        details: { to: url },
        hint: 'the address of an `rf listen --ingest host:port`, e.g. --to http://backup-1:7379',
      },
    );
  }
  if (parsed.username !== '' || parsed.password !== '') {
    throw new RfError('RF_USAGE', '--to must not carry credentials; the token goes in --token', {
      details: { to: `${parsed.protocol}//${parsed.host}` },
      hint: 'rf ship --to http://host:port --token <t> (or RF_TOKEN)',
    });
  }
  return parsed;
}
