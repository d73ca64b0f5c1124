import net from 'node:net';
import tls from 'node:tls';
import { errnoCode, RfError } from '../errors.js';
import type { RedisEndpoint } from '../redis-url.js';

export interface ConnectOptions {
  timeoutMs: number;
  tlsOptions?: tls.ConnectionOptions;
}

const unreachableHint = (where: string) =>
  `check that redis-server runs at ${where} and that this host may reach it (firewall, bind, protected-mode)`;

/** Opens a TCP (or TLS, for rediss://) connection, failing with a typed error that names the peer. */
export function openSocket(endpoint: RedisEndpoint, options: ConnectOptions): Promise<net.Socket> {
  const where = `${endpoint.host}:${endpoint.port}`;
  return new Promise((resolve, reject) => {
    const socket = endpoint.tls
      ? tls.connect({
          host: endpoint.host,
          port: endpoint.port,
          servername: net.isIP(endpoint.host) ? undefined : endpoint.host,
          ...options.tlsOptions,
        })
      : net.connect({ host: endpoint.host, port: endpoint.port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(
        new RfError('RF_TIMEOUT', `could not connect to ${where} within ${options.timeoutMs} ms`, {
          details: { peer: where, timeoutMs: options.timeoutMs },
          hint: unreachableHint(where),
        }),
      );
    }, options.timeoutMs);
    const onError = (err: Error) => {
      clearTimeout(timer);
      socket.destroy();
      const tlsProblem = endpoint.tls && errnoCode(err) !== 'ECONNREFUSED';
      reject(
        new RfError('RF_CONNECT', `cannot connect to ${where}: ${err.message}`, {
          details: { peer: where, errno: errnoCode(err), tls: endpoint.tls },
          hint: tlsProblem
            ? 'check the TLS options: --tls-ca, --tls-cert, --tls-key'
            : unreachableHint(where),
          cause: err,
        }),
      );
    };
    socket.once('error', onError);
    socket.once(endpoint.tls ? 'secureConnect' : 'connect', () => {
      clearTimeout(timer);
      socket.off('error', onError);
      socket.setNoDelay(true);
      socket.setKeepAlive(true, 10_000);
      resolve(socket);
    });
  });
}
