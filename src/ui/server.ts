/**
 * The HTTP side of `rf ui`: serves the page (plain files from ./static, no build step) and the
 * read-only JSON endpoints behind it. It knows no store: every endpoint is a function the
 * command line hands over, the same one its own command calls.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { errnoCode, isRfError, RfError } from '../errors.js';
import { isLoopback } from '../listen-address.js';

/** One JSON endpoint: the query string in, a JSON value out (or an RfError thrown). */
export type Endpoint = (query: URLSearchParams) => Promise<unknown>;

export interface UiServerOptions {
  host: string;
  port: number;
  /** Required on every /api request when set (`Authorization: Bearer <token>`). */
  token: string | undefined;
  /** `/api/<name>` → endpoint. */
  api: Record<string, Endpoint>;
}

export interface UiServer {
  port: number;
  close(): Promise<void>;
}

const STATIC: Record<string, { file: string; type: string }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/app.css': { file: 'app.css', type: 'text/css; charset=utf-8' },
};

/** The page loads nothing from elsewhere, runs no inline script, and is never framed. */
const HEADERS = {
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
};

/** HTTP status of an expected failure: the caller asked for something the archive lacks. */
function statusOf(err: RfError): number {
  if (err.exitCode === 2) return 400;
  if (err.code === 'RF_STORE_MISSING') return 404;
  return 503;
}

export async function startUiServer(options: UiServerOptions): Promise<UiServer> {
  const files = new Map(
    Object.entries(STATIC).map(([route, f]) => [
      route,
      { body: readFileSync(new URL(`./static/${f.file}`, import.meta.url)), type: f.type },
    ]),
  );
  const digest = (t: string) => createHash('sha256').update(t).digest();
  const wanted = options.token === undefined ? undefined : digest(options.token);
  const authorized = (req: http.IncomingMessage): boolean => {
    if (wanted === undefined) return true;
    const m = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
    // Compared as digests: equal lengths, and no timing hint about the token.
    return m !== null && timingSafeEqual(digest(m[1]!), wanted);
  };
  // Without a token the page answers only to names of this host: a web page elsewhere that
  // points its own hostname at 127.0.0.1 (DNS rebinding) gets nothing.
  const hostAllowed = (req: http.IncomingMessage, port: number): boolean => {
    if (wanted !== undefined) return true;
    const m = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(req.headers.host ?? '');
    if (m === null || Number(m[2] ?? 80) !== port) return false;
    return isLoopback(m[1]!.replace(/^\[|\]$/g, ''));
  };

  const send = (res: http.ServerResponse, status: number, type: string, body: string | Buffer) =>
    res.writeHead(status, { ...HEADERS, 'content-type': type }).end(body);
  const sendJson = (res: http.ServerResponse, status: number, value: unknown) =>
    send(res, status, 'application/json; charset=utf-8', JSON.stringify(value));

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://rf.invalid');
    if (!hostAllowed(req, port)) {
      sendJson(res, 421, { ok: false, error: { code: 'RF_USAGE', message: 'unknown Host' } });
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      // Read-only: nothing here writes or restores.
      res.setHeader('allow', 'GET, HEAD');
      sendJson(res, 405, { ok: false, error: { code: 'RF_USAGE', message: 'rf ui is read-only' } });
      return;
    }
    const file = files.get(url.pathname);
    if (file !== undefined) {
      send(res, 200, file.type, file.body);
      return;
    }
    const endpoint = url.pathname.startsWith('/api/')
      ? Object.hasOwn(options.api, url.pathname.slice(5))
        ? options.api[url.pathname.slice(5)]
        : undefined
      : undefined;
    if (endpoint === undefined) {
      sendJson(res, 404, { ok: false, error: { code: 'RF_USAGE', message: 'no such page' } });
      return;
    }
    if (!authorized(req)) {
      res.setHeader('www-authenticate', 'Bearer realm="rf ui"');
      sendJson(res, 401, {
        ok: false,
        error: {
          code: 'RF_USAGE',
          message: 'this rf ui needs its token: open the page as http://HOST:PORT/#token=<token>',
        },
      });
      return;
    }
    endpoint(url.searchParams).then(
      (value) => sendJson(res, 200, value),
      (err: unknown) => {
        if (isRfError(err)) sendJson(res, statusOf(err), { ok: false, error: err.toJSON() });
        else
          sendJson(res, 500, {
            ok: false,
            error: { code: 'RF_INTERNAL', message: String((err as Error)?.message ?? err) },
          });
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(listenError(options.host, options.port, err)));
    server.listen(options.port, options.host, () => resolve());
  });
  const port = (server.address() as { port: number }).port;
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** Why rf cannot serve on an address, in the operator's words, with what to change. */
function listenError(host: string, port: number, err: Error): RfError {
  const address = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
  const code = errnoCode(err);
  const why =
    code === 'EADDRINUSE'
      ? 'the port is in use'
      : code === 'EADDRNOTAVAIL'
        ? 'not an address of this host'
        : code === 'EACCES'
          ? 'this user may not bind that port'
          : code === 'ENOTFOUND' || code === 'EAI_AGAIN'
            ? 'the name does not resolve'
            : err.message;
  return new RfError('RF_USAGE', `rf ui cannot listen on ${address}: ${why}`, {
    details: { listen: address, errno: code },
    hint:
      code === 'EADDRINUSE'
        ? `pick a free port: --listen ${host.includes(':') ? `[${host}]` : host}:${port + 1}, or stop what serves ${address}`
        : 'give --listen an address of this host, for example 127.0.0.1:7380',
    cause: err,
  });
}
