import { RfError } from '../errors.js';
import { activity } from '../log/activity.js';
import { repoFromFlags } from '../repo/open.js';
import { Archive } from '../store/archive.js';
import { isValidSourceName } from '../store/keys.js';
import { indexSource } from '../store/summary.js';
import type { Endpoint } from '../ui/server.js';
import { activityJson, gatherInfo, type InfoOptions, infoJson, openInfoReader } from './info.js';
import { logRecord, readLog } from './log.js';
import { restoreFor, resultJson, shellQuote } from './restore.js';

/**
 * The JSON endpoints of `rf ui`: each calls what its command calls (gatherInfo for `rf info`,
 * restoreFor for `rf restore --dry-run`, readLog for `rf log`), so the page shows what the
 * command line would print with --json. None writes anything.
 */

export type UiSettings = InfoOptions;

/** `rf log --key` in the page shows this many writes at most; the command line shows all. */
export const LOG_LIMIT = 1000;
/** Activity bins across the part of the time axis in view. */
const ACTIVITY_BINS = 240;
const MAX_ACTIVITY_BINS = 2000;

export function uiEndpoints(settings: UiSettings): Record<string, Endpoint> {
  // One request at a time: with no rf listen running, each opens the store itself, and LevelDB
  // admits one opener per process.
  let queue: Promise<unknown> = Promise.resolve();
  const serial =
    (endpoint: Endpoint): Endpoint =>
    (query) => {
      const next = queue.then(
        () => endpoint(query),
        () => endpoint(query),
      );
      queue = next.catch(() => undefined);
      return next;
    };
  const base = {
    store: settings.store,
    ...(settings.repo === undefined
      ? {}
      : {
          repo: settings.repo,
          s3Endpoint: settings.s3Endpoint,
          s3Region: settings.s3Region,
          s3PathStyle: settings.s3PathStyle,
          repoKeyFile: settings.repoKeyFile,
        }),
    ...(settings.tz === undefined ? {} : { tz: settings.tz }),
  };
  /** The flags that name this archive on a command line the page shows. */
  const archiveFlags = (name: string) =>
    [
      settings.repo === undefined ? `--store ${shellQuote(settings.store)}` : '',
      settings.repo === undefined ? '' : `--repo ${shellQuote(settings.repo)}`,
      settings.s3Endpoint === undefined ? '' : `--s3-endpoint ${shellQuote(settings.s3Endpoint)}`,
      settings.s3Region === undefined ? '' : `--s3-region ${shellQuote(settings.s3Region)}`,
      settings.s3PathStyle ? '--s3-path-style' : '',
      settings.repoKeyFile === undefined
        ? ''
        : `--repo-key-file ${shellQuote(settings.repoKeyFile)}`,
      `--name ${shellQuote(name)}`,
    ]
      .filter((f) => f !== '')
      .join(' ');

  return {
    info: serial(async () => {
      const options = { ...base, ...(settings.name === undefined ? {} : { name: settings.name }) };
      return infoJson(options, await gatherInfo(options));
    }),

    activity: serial(async (q) => {
      const name = sourceParam(q);
      const from = timeParam(q, 'from');
      const until = timeParam(q, 'until');
      if (until < from) throw usage('until', 'a time at or after from');
      const bins = Number(q.get('bins') ?? ACTIVITY_BINS);
      if (!Number.isInteger(bins) || bins < 1 || bins > MAX_ACTIVITY_BINS)
        throw usage('bins', `a whole number of bins from 1 to ${MAX_ACTIVITY_BINS}`);
      const kv = await openInfoReader({ ...base, name }, await repoFromFlags(base));
      try {
        const archive = new Archive(kv);
        const ix = await indexSource(archive, await archive.requireSource(name));
        // The restorable ranges clipped to the view: the same counts `rf info` draws, finer.
        const inView = ix.restorable
          .filter((r) => r.until >= from && r.from <= until)
          .map((r) => ({ ...r, from: Math.max(r.from, from), until: Math.min(r.until, until) }));
        const a = await activity(archive, name, ix.timelines, inView, {
          maxBins: bins,
          metaLimit: 100_000,
        });
        return a === null ? null : activityJson(a);
      } finally {
        await kv.close();
      }
    }),

    plan: serial(async (q) => {
      const name = sourceParam(q);
      const until = q.get('until') ?? '';
      if (until === '') throw usage('until', 'the moment, as ISO 8601 UTC');
      const from = q.get('from') ?? 'auto';
      if (from !== 'auto' && from !== 'stream' && from !== 'aof')
        throw usage('from', 'stream, aof or auto');
      const began = Date.now();
      const result = await restoreFor(
        {
          ...base,
          name,
          until,
          from,
          dryRun: true,
          key: [],
          db: [],
          conflict: 'fail',
          ttl: 'keep',
          targetTimeout: 120_000,
        },
        {},
      );
      const plan = resultJson(result, began);
      const restore = `rf restore ${archiveFlags(name)} --until ${shellQuote(plan.until.utc)}${from === 'auto' ? '' : ` --from ${from}`}`;
      return {
        plan,
        commands: {
          dryRun: `${restore} --dry-run`,
          out: `${restore} --out ./restored`,
        },
      };
    }),

    log: serial(async (q) => {
      const name = sourceParam(q);
      const key = q.get('key') ?? '';
      if (key === '') throw usage('key', 'a Redis glob such as user:* or *');
      const since = q.get('since') ?? undefined;
      const until = q.get('until') ?? undefined;
      const records: ReturnType<typeof logRecord>[] = [];
      let truncated = false;
      const { stats } = await readLog(
        {
          ...base,
          name,
          key,
          ...(since === undefined ? {} : { since }),
          ...(until === undefined ? {} : { until }),
        },
        {
          note: () => undefined,
          write: (w, late) => {
            if (records.length === LOG_LIMIT) {
              truncated = true;
              return false;
            }
            records.push(logRecord(w, late));
            return true;
          },
        },
      );
      const window = [
        since === undefined ? '' : ` --since ${shellQuote(since)}`,
        until === undefined ? '' : ` --until ${shellQuote(until)}`,
      ].join('');
      return {
        records,
        truncated,
        damaged: stats.damaged.length,
        command: `rf log ${archiveFlags(name)}${window} --key ${shellQuote(key)}`,
      };
    }),
  };
}

function usage(param: string, what: string): RfError {
  return new RfError(
    'RF_USAGE',
    `the page asked with a missing or bad ${param}: it takes ${what}`,
    {
      details: { param },
    },
  );
}

function sourceParam(q: URLSearchParams): string {
  const name = q.get('name') ?? '';
  if (name === '') throw usage('name', 'a source name');
  // A name from outside is data: it never reaches a store prefix unchecked.
  if (!isValidSourceName(name)) {
    throw new RfError('RF_USAGE', `${JSON.stringify(name)} is not a valid source name`, {
      details: { name },
    });
  }
  return name;
}

/** A time the page sends: ms since the epoch, as the axis holds it. */
function timeParam(q: URLSearchParams, param: string): number {
  const ms = Number(q.get(param));
  if (q.get(param) === null || !Number.isFinite(ms)) throw usage(param, 'ms since the epoch');
  return ms;
}
