import { readFileSync } from 'node:fs';
import path from 'node:path';
import type tls from 'node:tls';
import { readPasswordFile } from '../config.js';
import { openReader } from '../daemon/open-reader.js';
import { RfError } from '../errors.js';
import { silentLogger } from '../logger.js';
import { parseRedisUrl, redactUrl } from '../redis-url.js';
import { checkBase, readBase } from '../restore/base-file.js';
import { planRestore } from '../restore/locate.js';
import type { RestorePlan } from '../restore/plan.js';
import { emptyStats, type ReplayStats, replayFrames } from '../restore/replay.js';
import { checkOutDir, writeRestoreDir } from '../restore/write-dir.js';
import { loadTarget } from '../restore/write-target.js';
import { Archive } from '../store/archive.js';
import { describeInstant, isoUtc, machineZone, type ResolvedTime, resolveTime } from '../time.js';
import { formatBytes } from './info.js';
import { out, reportError, usageError } from './output.js';
import { Progress } from './progress.js';

export interface RestoreOptions {
  store: string;
  until: string;
  out?: string;
  target?: string;
  name: string;
  from: string;
  tz?: string;
  dryRun?: boolean;
  passwordFile?: string;
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
  serveHost?: string;
  targetTimeout: string;
  json?: boolean;
}

export async function run(options: RestoreOptions): Promise<number> {
  // --target may carry a password: keep it out of `ps`.
  process.title = 'rf restore';
  const began = Date.now();
  try {
    if (options.out !== undefined && options.target !== undefined) {
      throw usageError('give either --out or --target, not both');
    }
    if (options.out === undefined && options.target === undefined && !options.dryRun) {
      throw usageError(
        'say where to restore: --out <dir> or --target <redis-url> (or --dry-run to see the plan)',
        'rf restore --store DIR --until "2026-11-24T15:12:01Z" --out /tmp/restored',
      );
    }
    if (!['stream', 'auto'].includes(options.from)) {
      throw new RfError(
        'RF_USAGE',
        `--from ${options.from}: this store can restore from the stream only`,
        {
          details: { from: options.from },
          hint: 'use --from stream (or auto)',
        },
      );
    }
    // Fail on a used --out before reading anything.
    if (options.out !== undefined) await checkOutDir(options.out);
    const kv = await openReader(options.store);
    try {
      const archive = new Archive(kv);
      const latest = (await archive.timelines(options.name)).reduce<number | undefined>(
        (m, t) => (m === undefined || t.lastTime > m ? t.lastTime : m),
        undefined,
      );
      const until = resolveTime(options.until, {
        now: Date.now(),
        tz: options.tz ?? machineZone(),
        ...(latest === undefined ? {} : { latest }),
      });
      // Every command that takes a time says what it understood, before it acts.
      out.note(describeInstant(until));
      const plan = await planRestore(archive, options.name, until.ms);
      const stats = emptyStats();
      if (options.dryRun) {
        for await (const _ of replayFrames(archive, plan, stats)) {
          // counting only
        }
        await checkBase(kv.dir, plan.base);
        report(options, until, plan, stats, null, began);
        return 0;
      }
      const progress = new Progress('restore', () => ({
        done: Math.max(0, stats.offset - plan.fromOffset),
        total: Math.max(1, plan.cut.offset - plan.fromOffset),
        text: `${stats.commands} commands, ${formatBytes(stats.bytes)}`,
      }));
      let into: Record<string, unknown>;
      if (options.out !== undefined) {
        const dir = path.resolve(options.out);
        progress.start();
        try {
          await writeRestoreDir(
            dir,
            readBase(kv.dir, plan.base),
            replayFrames(archive, plan, stats),
          );
        } finally {
          progress.stop();
        }
        into = {
          kind: 'dir',
          dir,
          command: `redis-server --dir ${shellQuote(dir)} --appendonly yes`,
        };
      } else {
        const endpoint = parseRedisUrl(options.target!);
        if (options.passwordFile !== undefined)
          endpoint.password = readPasswordFile(options.passwordFile);
        const tlsOptions: tls.ConnectionOptions = {};
        if (options.tlsCa) tlsOptions.ca = readFileSync(options.tlsCa);
        if (options.tlsCert) tlsOptions.cert = readFileSync(options.tlsCert);
        if (options.tlsKey) tlsOptions.key = readFileSync(options.tlsKey);
        // The target must not receive a base that fails its checksum: check it before sending.
        await checkBase(kv.dir, plan.base);
        progress.start();
        try {
          await loadTarget(
            {
              endpoint,
              ...(Object.keys(tlsOptions).length > 0 ? { tlsOptions } : {}),
              ...(options.serveHost !== undefined ? { serveHost: options.serveHost } : {}),
              idleTimeoutMs: Number(options.targetTimeout),
              log: silentLogger(),
            },
            { bytes: plan.base.bytes, chunks: readBase(kv.dir, plan.base) },
            replayFrames(archive, plan, stats),
          );
        } finally {
          progress.stop();
        }
        into = { kind: 'target', url: redactUrl(options.target!) };
      }
      report(options, until, plan, stats, into, began);
      return 0;
    } finally {
      await kv.close();
    }
  } catch (err) {
    return reportError(err, options.json === true);
  }
}

function report(
  options: RestoreOptions,
  until: ResolvedTime,
  plan: RestorePlan,
  stats: ReplayStats,
  into: Record<string, unknown> | null,
  began: number,
): void {
  const dropped = plan.cut.dropped;
  const result = {
    ok: true,
    dryRun: options.dryRun === true,
    source: plan.source,
    until: { input: until.input, utc: isoUtc(until.ms), zone: until.zone },
    timeline: plan.timeline.id,
    base: {
      file: plan.base.file,
      offset: plan.base.offset,
      takenAt: isoUtc(plan.base.takenAt),
      bytes: plan.base.bytes,
    },
    replay: {
      fromOffset: plan.fromOffset,
      cutOffset: plan.cut.offset,
      commands: stats.commands,
      writes: stats.writes,
      bytes: stats.bytes,
      segments: stats.segments,
    },
    lastWrite:
      stats.last === null
        ? null
        : { offset: stats.last.offset, time: isoUtc(stats.last.time), command: stats.last.command },
    droppedTransaction:
      dropped === null
        ? null
        : {
            multiAt: dropped.multiAt,
            time: dropped.time === null ? null : isoUtc(dropped.time),
            commands: dropped.commands,
            reason: dropped.reason,
          },
    into,
    seconds: (Date.now() - began) / 1000,
  };
  if (options.json) {
    out.json(result);
    return;
  }
  out.line(
    `${options.dryRun ? 'plan' : 'restored'}: source ${plan.source}, timeline ${plan.timeline.id}`,
  );
  out.line(
    `  base         ${path.join(options.store, plan.base.file)} (offset ${plan.base.offset}, taken ${isoUtc(plan.base.takenAt)}, ${formatBytes(plan.base.bytes)})`,
  );
  out.line(
    `  replay       offsets ${plan.fromOffset}..${plan.cut.offset}: ${stats.writes} writes in ${stats.segments} segments (${formatBytes(stats.bytes)})`,
  );
  out.line(
    `  last write   ${stats.last === null ? 'none after the base' : `${isoUtc(stats.last.time)}  offset ${stats.last.offset}  ${stats.last.command.toUpperCase()}`}`,
  );
  if (dropped !== null) {
    const why =
      dropped.reason === 'open-at-archive-end'
        ? 'the archive ends inside it'
        : 'the target time falls inside it';
    out.line(
      `  dropped      a transaction (MULTI at offset ${dropped.multiAt}${dropped.time === null ? '' : `, ${isoUtc(dropped.time)}`}, ${dropped.commands} commands): ${why}`,
    );
  }
  if (into === null) {
    out.line('nothing written (--dry-run)');
  } else if (into.kind === 'dir') {
    out.line(`wrote ${into.dir as string} in ${result.seconds.toFixed(1)} s; start it with:`);
    out.line(`  ${into.command as string}`);
  } else {
    out.line(
      `loaded ${into.url as string} in ${result.seconds.toFixed(1)} s; it is a standalone master again`,
    );
  }
}

function shellQuote(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}
