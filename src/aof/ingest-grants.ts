import { RfError } from '../errors.js';
import { isValidSourceName } from '../store/keys.js';
import type { IngestGrant } from './ingest.js';

/**
 * The tokens of `--ingest-token-file`, one a line: `<source> <token>` lets the token write that
 * source (a token on several lines writes each of them), and a bare `<token>` writes the source
 * this rf listen captures (`--name`), which is what one rf ship beside one master sends. No
 * token writes every source: one shipper's token must not reach another source's record.
 * Blank lines and lines starting with `#` are skipped.
 */
export function parseIngestGrants(text: string, flag: string, ownSource: string): IngestGrant[] {
  const byToken = new Map<string, Set<string>>();
  for (const [i, raw] of text.split(/\r?\n/).entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const fields = line.split(/\s+/);
    if (fields.length > 2) {
      throw new RfError('RF_USAGE', `${flag} line ${i + 1} holds ${fields.length} fields`, {
        details: { flag, line: i + 1 },
        hint: 'each line is `<source> <token>`, or a bare `<token>` for this rf listen’s --name',
      });
    }
    const [source, token] =
      fields.length === 2 ? [fields[0]!, fields[1]!] : [ownSource, fields[0]!];
    // The fields are not echoed: a token written in the source's place would be shown.
    if (!isValidSourceName(source)) {
      throw new RfError('RF_USAGE', `${flag} line ${i + 1} names an invalid source`, {
        details: { flag, line: i + 1 },
        hint: 'a source name is letters, digits, dot, dash and underscore',
      });
    }
    const sources = byToken.get(token) ?? new Set<string>();
    sources.add(source);
    byToken.set(token, sources);
  }
  return [...byToken].map(([token, sources]) => ({ token, sources: [...sources] }));
}
