import { once } from 'node:events';
import { readSecretFile } from '../config.js';
import { openReader } from '../daemon/open-reader.js';
import { RfError } from '../errors.js';
import { isLoopback, parseListen } from '../listen-address.js';
import type { RepoFlags } from '../repo/open.js';
import { startUiServer } from '../ui/server.js';
import { out, reportError } from './output.js';
import { uiEndpoints } from './ui-api.js';

export interface UiOptions extends RepoFlags {
  store: string;
  name?: string;
  listen: string;
  tokenFile?: string;
  tz?: string;
  json?: boolean;
}

/**
 * `rf ui`: a read-only page on the archive (the restorable window on a time axis, the plan of a
 * restore to a moment, a key's history), served until SIGINT or SIGTERM.
 */
export async function run(options: UiOptions): Promise<number> {
  try {
    const { host, port } = parseListen('--listen', options.listen);
    const token = readToken(options);
    if (token === undefined && !isLoopback(host)) {
      throw new RfError(
        'RF_USAGE',
        `--listen ${options.listen} is reachable beyond this host: rf ui needs a token there`,
        {
          details: { listen: options.listen },
          hint: 'give --token-file FILE (or RF_UI_TOKEN) and open the page as http://HOST:PORT/#token=<token>; or --listen 127.0.0.1:PORT behind an SSH tunnel',
        },
      );
    }
    const server = await startUiServer({ host, port, token, api: uiEndpoints(options) });
    if (options.repo === undefined) {
      // The store must be there before the page says it serves it (the bucket is read on the
      // first request).
      try {
        await (await openReader(options.store)).close();
      } catch (err) {
        await server.close();
        throw err;
      }
    }
    const address = `http://${host.includes(':') ? `[${host}]` : host}:${server.port}/`;
    if (options.json)
      out.json({ ok: true, url: address, store: options.store, token: token !== undefined });
    else {
      out.line(`rf ui: serving ${options.repo ?? options.store} read-only on ${address}`);
      if (token !== undefined)
        out.line(
          `  open ${address}#token=<token> (the token of ${options.tokenFile ?? 'RF_UI_TOKEN'})`,
        );
      out.line('  Ctrl-C stops it');
    }
    await Promise.race([once(process, 'SIGINT'), once(process, 'SIGTERM')]);
    await server.close();
    return 0;
  } catch (err) {
    return reportError(err, options.json === true);
  }
}

/** --token-file, else RF_UI_TOKEN; a file that holds no token is refused, not ignored. */
function readToken(options: UiOptions): string | undefined {
  if (options.tokenFile !== undefined) {
    const token = readSecretFile('--token-file', options.tokenFile).trim();
    if (token === '') {
      throw new RfError('RF_USAGE', `--token-file ${options.tokenFile} holds no token`, {
        details: { file: options.tokenFile },
        hint: 'put the token on the first line of the file',
      });
    }
    return token;
  }
  const env = process.env.RF_UI_TOKEN?.trim();
  return env === undefined || env === '' ? undefined : env;
}
