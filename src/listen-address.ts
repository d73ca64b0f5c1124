/** The addresses rf serves on: `rf listen --ingest` and `--metrics`. */
import { RfError } from './errors.js';

/** Parses `host:port`, `[v6]:port`, `:port` or `port`. RF_USAGE when it is none of them. */
export function parseListen(flag: string, value: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(value) ?? /^()()(\d{1,5})$/.exec(value);
  const port = Number(m?.[3]);
  if (m === null || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new RfError('RF_USAGE', `${flag} takes host:port, got ${JSON.stringify(value)}`, {
      details: { flag, value },
      hint: `for example ${flag} 127.0.0.1:7379, or an address of this host`,
    });
  }
  // No host: loopback. Every interface must be asked for (0.0.0.0, ::), never a default.
  return { host: m[1] || m[2] || '127.0.0.1', port };
}

/** An address only this host can reach. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}
