import { readFileSync } from 'node:fs';
import { type Command, CommanderError, type Option } from 'commander';
import { errnoCode, RfError } from '../errors.js';
import { redactUrl } from '../redis-url.js';

/**
 * Configuration from four places, in this order of precedence: flags, RF_* environment
 * variables, a YAML config file (--config or RF_CONFIG), and the defaults. Commander records
 * where each value came from; a value from the file only replaces a default.
 *
 * The file's top-level keys are option names without the dashes (`store`, `base-every`); a
 * section named after a command (`listen:`, `restore:`) applies to that command only.
 */

/** Options whose value names one run, not a standing setting: no RF_* variable for them. */
const PER_RUN = new Set([
  'until',
  'since',
  'out',
  'target',
  'key',
  'db',
  'command',
  'config',
  'json',
  'dry-run',
  // Cutting by bounds is a decision about one restore, never a standing setting.
  'accept-imprecise',
  'fix',
  'print-config',
]);

export function envName(option: Option): string {
  return `RF_${option
    .attributeName()
    .replace(/[A-Z]/g, (c) => `_${c}`)
    .toUpperCase()}`;
}

async function readConfig(file: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new RfError('RF_USAGE', `cannot read the config file ${file}`, {
      details: { config: file, errno: errnoCode(err) },
      hint: 'check --config (or RF_CONFIG)',
      cause: err,
    });
  }
  let doc: unknown;
  try {
    // yaml is loaded only when there is a file to read: it is a third of rf's start-up time.
    const { parse } = await import('yaml');
    doc = parse(text);
  } catch (err) {
    throw new RfError(
      'RF_USAGE',
      `the config file ${file} is not valid YAML: ${(err as Error).message}`,
      {
        details: { config: file },
        hint: 'see rf.example.yaml for the format',
        cause: err,
      },
    );
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== 'object' || Array.isArray(doc)) {
    throw new RfError(
      'RF_USAGE',
      `the config file ${file} must hold a mapping of option names to values`,
      {
        details: { config: file },
        hint: 'see rf.example.yaml for the format',
      },
    );
  }
  return doc as Record<string, unknown>;
}

/**
 * A value from RF_* or the file goes through the option's own parser, as a flag would
 * (options.ts): a bad one is RF_USAGE naming where it came from.
 */
function parsed(option: Option, text: string, from: string): unknown {
  if (option.parseArg === undefined) return text;
  try {
    return option.parseArg(text, undefined);
  } catch (err) {
    const message = err instanceof CommanderError ? err.message : (err as Error).message;
    throw new RfError('RF_USAGE', `${from}: ${message}`, {
      details: { option: option.long, value: text, from },
      hint: `correct ${from}, or give ${option.long} on the command line`,
      cause: err,
    });
  }
}

/** Whether an option's value names a standing setting (so RF_* and the file may set it). */
function standing(option: Option): boolean {
  const long = option.long?.slice(2);
  return long !== undefined && !PER_RUN.has(long);
}

/**
 * Fills `cmd`'s options that still hold their default: first from RF_<OPTION> variables, then
 * from the config file. (Commander's own env binding must be set before an option is added;
 * doing it here covers every command's options in one place.)
 */
export async function applyConfig(
  program: Command,
  cmd: Command,
  env: NodeJS.ProcessEnv = process.env,
): Promise<void> {
  const unset = (attr: string) => {
    const source = cmd.getOptionValueSource(attr);
    return source === undefined || source === 'default';
  };
  for (const option of cmd.options) {
    if (!standing(option)) continue;
    const value = env[envName(option)];
    if (value === undefined || !unset(option.attributeName())) continue;
    cmd.setOptionValueWithSource(
      option.attributeName(),
      option.isBoolean()
        ? value === '1' || value === 'true'
        : parsed(option, value, envName(option)),
      'env',
    );
  }
  // REDIS_URL is the conventional variable for where Redis is: it counts as environment.
  if (cmd.options.some((o) => o.long === '--source') && unset('source') && env.REDIS_URL) {
    cmd.setOptionValueWithSource('source', env.REDIS_URL, 'env');
  }
  const file = (cmd.opts().config as string | undefined) ?? env.RF_CONFIG;
  if (file === undefined) return;
  const doc = await readConfig(file);
  const commands = new Set(program.commands.map((c) => c.name()));
  const byLong = new Map(cmd.options.map((o) => [o.long?.slice(2) ?? '', o]));
  const apply = (entries: Record<string, unknown>, where: string) => {
    for (const [key, value] of Object.entries(entries)) {
      if (commands.has(key)) continue;
      const option = byLong.get(key);
      if (option === undefined) {
        // A key another command takes is fine at the top level; anything else is a typo.
        const known = program.commands.some((c) => c.options.some((o) => o.long === `--${key}`));
        if (known && where === 'top level') continue;
        throw new RfError(
          'RF_USAGE',
          `the config file ${file} has an unknown option ${JSON.stringify(key)} (${where})`,
          {
            details: { config: file, key, where },
            hint: `rf ${cmd.name()} -h lists the options; write them without the dashes`,
          },
        );
      }
      const attr = option.attributeName();
      const source = cmd.getOptionValueSource(attr);
      if (source !== undefined && source !== 'default' && source !== 'config') continue;
      if (!standing(option)) {
        throw new RfError(
          'RF_USAGE',
          `the config file ${file} sets ${key}, which names one run, not a setting`,
          {
            details: { config: file, key },
            hint: `give --${key} on the command line`,
          },
        );
      }
      if (value === null || typeof value === 'object') {
        throw new RfError(
          'RF_USAGE',
          `the config file ${file} gives ${key} a value that is not a string, number or boolean`,
          {
            details: { config: file, key },
          },
        );
      }
      cmd.setOptionValueWithSource(
        attr,
        option.isBoolean() ? value === true : parsed(option, String(value), `${key} in ${file}`),
        'config',
      );
    }
  };
  apply(doc, 'top level');
  const section = doc[cmd.name()];
  if (section !== undefined) {
    if (section === null || typeof section !== 'object' || Array.isArray(section)) {
      throw new RfError(
        'RF_USAGE',
        `the config file ${file} has a ${cmd.name()} section that is not a mapping`,
        {
          details: { config: file, section: cmd.name() },
        },
      );
    }
    apply(section as Record<string, unknown>, `section ${cmd.name()}`);
  }
}

const SECRET = /password|token|secret/i;

/** The effective configuration of `cmd`, with each value's source; secrets never shown. */
export function effectiveConfig(cmd: Command): Record<string, { value: unknown; source: string }> {
  const out: Record<string, { value: unknown; source: string }> = {};
  for (const option of cmd.options) {
    const long = option.long?.slice(2);
    if (long === undefined || long === 'print-config' || long === 'json') continue;
    const attr = option.attributeName();
    let value = cmd.getOptionValue(attr);
    if (value === undefined) continue;
    if (SECRET.test(long) && !long.endsWith('-file')) value = '[redacted]';
    else if (typeof value === 'string') value = redactedIfUrl(value);
    // Repeatable URLs (--sentinel) carry passwords too.
    else if (Array.isArray(value))
      value = value.map((v) => (typeof v === 'string' ? redactedIfUrl(v) : v));
    out[long] = { value, source: cmd.getOptionValueSource(attr) ?? 'default' };
  }
  return out;
}

function redactedIfUrl(value: string): string {
  return /^rediss?:\/\//.test(value) ? redactUrl(value) : value;
}
