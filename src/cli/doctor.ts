import { redisConnection } from '../config.js';
import type { Check, FixOutcome } from '../doctor/settings.js';
import { describeEndpoint, redactUrl } from '../redis-url.js';
import { describeServer } from '../replication/server-info.js';
import type { RedisClient } from '../resp/client.js';
import { out, reportError } from './output.js';

export interface DoctorOptions {
  source: string;
  fix?: boolean;
  rfUser: string;
  /** In ms, as options.ts parsed it. */
  reconnectWindow: number;
  passwordFile?: string;
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
  json?: boolean;
  /** How long the write rate is measured, in ms (tests shorten it). */
  sampleMs?: number;
}

const mark: Record<Check['status'], string> = {
  ok: 'ok  ',
  warn: 'WARN',
  fail: 'FAIL',
  unknown: '??  ',
};

/**
 * `rf doctor`: checks and explains each setting rf relies on; with --fix applies what it can
 * with CONFIG SET (and CONFIG REWRITE when the server has a config file), printing each change.
 * Exit 0 when all is well, 1 when something needs attention, 3 when the Redis cannot be reached.
 */
export async function run(options: DoctorOptions): Promise<number> {
  const json = options.json === true;
  // Loaded here, not at start-up: every rf command pays for what main.ts imports.
  const [{ applyFixes, diagnose }, { RedisClient }] = await Promise.all([
    import('../doctor/settings.js'),
    import('../resp/client.js'),
  ]);
  let client: RedisClient | null = null;
  try {
    const { endpoint, tlsOptions } = redisConnection(options.source, options);
    const reconnectWindowMs = options.reconnectWindow;
    client = await RedisClient.connect(endpoint, {
      timeoutMs: 10_000,
      name: 'rf-doctor',
      ...(tlsOptions ? { tlsOptions } : {}),
    });
    const diagnosis = await diagnose(client, {
      rfUser: options.rfUser,
      reconnectWindowMs,
      sampleMs: options.sampleMs ?? 1000,
    });
    let fixes: FixOutcome | null = null;
    if (options.fix) fixes = await applyFixes(client, diagnosis);
    const attention = diagnosis.checks.filter((c) => c.status !== 'ok');
    const source = redactUrl(options.source);
    if (json) {
      out.json({
        ok: attention.length === 0,
        source,
        version: diagnosis.version,
        server: { name: diagnosis.server.name, version: diagnosis.server.version },
        writeRate: Math.round(diagnosis.writeRate),
        checks: diagnosis.checks,
        aclLine: diagnosis.aclLine,
        configFile: diagnosis.configFile,
        ...(fixes ? { configRewrite: fixes.configRewrite } : {}),
      });
    } else {
      out.line(
        `rf doctor: ${source} (${describeEndpoint(endpoint)}, ${describeServer(diagnosis.server)})`,
      );
      for (const c of diagnosis.checks) {
        const fixedNote =
          c.fixed === true ? '  (fixed)' : c.fixed === false ? `  (fix failed: ${c.fixError})` : '';
        out.line(
          `  ${mark[c.status]}  ${c.name}: ${c.current ?? '(unset)'}  →  ${c.recommended}${fixedNote}`,
        );
        if (c.status !== 'ok' || c.fixed) {
          out.line(`        ${c.why}`);
          if (c.fix && !c.fixed) out.line(`        fix: ${c.fix.join(' ')}`);
        }
      }
      out.line('');
      out.line(`The user rf should log in as (create it as an admin, then use it in --source):`);
      out.line(`  ${diagnosis.aclLine}`);
      if (fixes) {
        for (const c of fixes.applied)
          out.line(
            `${c.fixed ? 'applied' : 'FAILED '}: ${c.fix!.join(' ')}${c.fixError ? ` (${c.fixError})` : ''}`,
          );
        const rw = fixes.configRewrite;
        if (rw.status === 'done') out.line(`CONFIG REWRITE: saved to ${diagnosis.configFile}`);
        if (rw.status === 'no-config-file')
          out.line(
            'CONFIG REWRITE not possible: this Redis runs without a config file; add the settings above to how it is started, or they are lost at restart',
          );
        if (rw.status === 'failed') out.line(`CONFIG REWRITE failed: ${rw.error}`);
      }
      out.line(
        attention.length === 0
          ? 'All is well.'
          : `${attention.length} ${attention.length === 1 ? 'setting needs' : 'settings need'} attention${options.fix ? '' : '; `rf doctor --fix` applies the CONFIG SET lines (the ACL user is yours to create)'}.`,
      );
    }
    return attention.length === 0 ? 0 : 1;
  } catch (err) {
    return reportError(err, json);
  } finally {
    await client?.close().catch(() => undefined);
  }
}
