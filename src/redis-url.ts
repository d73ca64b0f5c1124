import { isIPv6 } from 'node:net';
import { RfError } from './errors.js';

/** Where a Redis server listens and how to log in to it. */
export interface RedisEndpoint {
  /** Host name or IP address; an IPv6 address without its URL brackets. */
  host: string;
  port: number;
  db: number;
  username?: string;
  password?: string;
  tls: boolean;
}

const ACCEPTED_FORM = 'redis://[user[:password]@]host[:port][/db] (rediss:// for TLS)';
const DEFAULT_PORT = 6379;

/**
 * Parses `redis://[user[:password]@]host[:port][/db]` or `rediss://…` (TLS). The password may
 * instead come from `RF_PASSWORD`, which keeps it out of process listings; a password in the URL
 * wins. User and password are percent-decoded, so a password holding `@` or `:` is written `%40`,
 * `%3A`.
 */
export function parseRedisUrl(
  url: string,
  env: NodeJS.ProcessEnv = process.env,
  /** A password from elsewhere (`--password-file`): it is the one used, whatever the URL holds. */
  given: { password?: string } = {},
): RedisEndpoint {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    // The TypeError is not kept as a cause: Node puts the whole input, password included, on it.
    const port = /^[a-z]+:\/\/[^/]*:(\d+)(?:\/|$)/i.exec(url)?.[1];
    throw badUrl(
      url,
      port !== undefined && Number(port) > 65535
        ? `port ${port} is not between 1 and 65535`
        : 'it is not a URL',
    );
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
    throw badUrl(url, `the scheme is ${JSON.stringify(parsed.protocol.slice(0, -1))}`);
  }
  // For schemes unknown to WHATWG URL the host is opaque: brackets stay around an IPv6 address.
  let host = parsed.hostname;
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  if (host === '') throw badUrl(url, 'it names no host');
  if (host.includes(':') && !isIPv6(host)) throw badUrl(url, `${host} is not an IPv6 address`);

  let port = DEFAULT_PORT;
  if (parsed.port !== '') {
    port = Number(parsed.port);
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      throw badUrl(url, `port ${parsed.port} is not between 1 and 65535`);
    }
  }

  let db = 0;
  const path = parsed.pathname;
  if (path !== '' && path !== '/') {
    const text = path.slice(1);
    if (!/^(0|[1-9][0-9]{0,8})$/.test(text)) {
      throw badUrl(url, `the database ${JSON.stringify(decodeSafely(text))} is not a number`);
    }
    db = Number(text);
  }
  if (parsed.search !== '' || parsed.hash !== '') {
    throw badUrl(url, 'query strings and fragments are not supported');
  }

  const username = decodeSafely(parsed.username);
  let password = decodeSafely(parsed.password);
  if (given.password !== undefined) password = given.password;
  else if (password === '' && env.RF_PASSWORD !== undefined && env.RF_PASSWORD !== '') {
    password = env.RF_PASSWORD;
  }
  if (username !== '' && password === '') {
    // AUTH needs a password; sending none would log in as `default` instead of this user. The user
    // info is not echoed: in `redis://secret@host` it may well be a password written the old way.
    const shown = `${url.slice(0, url.indexOf('://') + 3)}***${url.slice(url.lastIndexOf('@'))}`;
    throw new RfError(
      'RF_BAD_URL',
      `the Redis URL ${JSON.stringify(shown)} names a user but no password`,
      {
        details: { url: shown },
        hint: 'give the password with --password-file FILE, or set RF_PASSWORD, or write redis://user:password@host:port',
      },
    );
  }

  return {
    host,
    port,
    db,
    ...(username === '' ? {} : { username }),
    ...(password === '' ? {} : { password }),
    tls: parsed.protocol === 'rediss:',
  };
}

/**
 * The URL with its password replaced by `***`, safe for logs and error messages. Works on text that
 * is not a valid URL too, since that is when it ends up in an error message.
 */
export function redactUrl(url: string): string {
  const scheme = url.indexOf('://');
  if (scheme === -1) return url;
  const authorityStart = scheme + 3;
  // The last `@` ends the user info, as in WHATWG URL parsing: an unencoded `@` in a password
  // belongs to the password.
  const at = url.lastIndexOf('@');
  if (at < authorityStart) return url;
  const userinfo = url.slice(authorityStart, at);
  const colon = userinfo.indexOf(':');
  if (colon === -1) return url;
  return `${url.slice(0, authorityStart)}${userinfo.slice(0, colon)}:***${url.slice(at)}`;
}

/** `host:port` for messages, with brackets around an IPv6 address. */
export function describeEndpoint(endpoint: Pick<RedisEndpoint, 'host' | 'port'>): string {
  const host = endpoint.host.includes(':') ? `[${endpoint.host}]` : endpoint.host;
  return `${host}:${endpoint.port}`;
}

/**
 * Another node reached with the same login and TLS as `auth`, in db 0: a cluster node or the
 * master Sentinel names, found from the one the operator gave.
 */
export function endpointAt(
  auth: Pick<RedisEndpoint, 'username' | 'password' | 'tls'>,
  at: Pick<RedisEndpoint, 'host' | 'port'>,
): RedisEndpoint {
  const { username, password, tls } = auth;
  return {
    host: at.host,
    port: at.port,
    db: 0,
    tls,
    ...(username === undefined ? {} : { username }),
    ...(password === undefined ? {} : { password }),
  };
}

/** The same node: host and port (null is no node, the same as another null). */
export function sameEndpoint(
  a: Pick<RedisEndpoint, 'host' | 'port'> | null,
  b: Pick<RedisEndpoint, 'host' | 'port'> | null,
): boolean {
  if (a === null || b === null) return a === b;
  return a.host === b.host && a.port === b.port;
}

function decodeSafely(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

function badUrl(url: string, reason: string): RfError {
  const shown = redactUrl(url);
  return new RfError('RF_BAD_URL', `invalid Redis URL ${JSON.stringify(shown)}: ${reason}`, {
    details: { url: shown },
    hint: `write it as ${ACCEPTED_FORM}, e.g. redis://127.0.0.1:6379/0`,
  });
}
