import net from 'node:net';

export interface TcpProxy {
  readonly port: number;
  /** Connections accepted so far, live or not. */
  readonly connections: number;
  /** Destroys every live connection pair at once, like a network cut; new connections still work. */
  cut(): void;
  /** A cut that lasts: connections made in the next `ms` are dropped at once too. */
  down(ms: number): void;
  close(): Promise<void>;
}

/**
 * A TCP proxy on 127.0.0.1 in front of `host:targetPort`, so a test can cut the link between rf
 * and Redis without stopping either. `pipe` carries backpressure both ways. With
 * `cutAfterBytes`, each connection is cut once the client has sent that many bytes.
 */
export async function startProxy(
  targetPort: number,
  host = '127.0.0.1',
  options: { cutAfterBytes?: number } = {},
): Promise<TcpProxy> {
  const pairs = new Set<[net.Socket, net.Socket]>();
  let accepted = 0;
  let downUntil = 0;

  const server = net.createServer((downstream) => {
    accepted++;
    if (Date.now() < downUntil) {
      downstream.destroy();
      return;
    }
    const upstream = net.connect({ host, port: targetPort });
    const pair: [net.Socket, net.Socket] = [downstream, upstream];
    pairs.add(pair);
    const teardown = (): void => {
      pairs.delete(pair);
      downstream.destroy();
      upstream.destroy();
    };
    // Either side failing or closing ends both, as a real middlebox dropping the flow would.
    downstream.on('error', teardown);
    upstream.on('error', teardown);
    downstream.on('close', teardown);
    upstream.on('close', teardown);
    const limit = options.cutAfterBytes;
    if (limit === undefined) {
      downstream.pipe(upstream);
    } else {
      // A link that fails mid-transfer: the first `limit` bytes the client sends get through.
      let sent = 0;
      downstream.on('data', (chunk: Buffer) => {
        const room = limit - sent;
        sent += chunk.length;
        if (room > 0) upstream.write(chunk.subarray(0, room));
        if (sent >= limit) upstream.end(() => cut());
      });
    }
    upstream.pipe(downstream);
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as net.AddressInfo;

  const cut = (): void => {
    for (const [downstream, upstream] of pairs) {
      downstream.destroy();
      upstream.destroy();
    }
    pairs.clear();
  };

  return {
    port,
    get connections() {
      return accepted;
    },
    cut,
    down(ms: number) {
      downUntil = Date.now() + ms;
      cut();
    },
    close: () =>
      new Promise<void>((resolve) => {
        cut();
        server.close(() => resolve());
      }),
  };
}
