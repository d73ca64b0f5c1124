import path from 'node:path';
import { redisConnection } from '../config.js';
import { openReader } from '../daemon/open-reader.js';
import { silentLogger } from '../logger.js';
import { redactUrl } from '../redis-url.js';
import { type AofCut, aofReplay, planAofRestore, readAofBase } from '../restore/aof-source.js';
import { checkBase, emptyRdb, readBase } from '../restore/base-file.js';
import { planRestore } from '../restore/locate.js';
import type { DroppedTransaction } from '../restore/plan.js';
import { emptyStats, type ReplayStats, replayFrames } from '../restore/replay.js';
import { checkOutDir, writeRestoreDir } from '../restore/write-dir.js';
import { loadTarget } from '../restore/write-target.js';
import { Archive } from '../store/archive.js';
import { AofArchive } from '../store/chunks.js';
import type { KvReader } from '../store/store.js';
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
  from: 'stream' | 'aof' | 'auto';
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

/** One restore, whichever record it reads: what to write and what to say about it. */
interface Prepared {
  from: 'stream' | 'aof';
  precision: 'millisecond' | 'second' | 'chunk';
  timeline: number | null;
  base: { file: string | null; offset: number | null; takenAt: number; bytes: number };
  /** The base as --out writes it (null: the incr file alone). */
  dirBase: () => { format: 'rdb' | 'aof'; chunks: AsyncIterable<Buffer> } | null;
  /** The base and commands as --target receives them: an RDB, then the stream. */
  targetBase: () => { bytes: number; chunks: AsyncIterable<Buffer> };
  commands: () => AsyncIterable<Buffer>;
  check: () => Promise<void>;
  replay: { fromOffset: number | null; cutOffset: number | null };
  dropped: () => DroppedTransaction | null;
  progress: () => { done: number; total: number };
  stats: ReplayStats;
}

async function* concat(...parts: AsyncIterable<Buffer>[]): AsyncIterable<Buffer> {
  for (const p of parts) yield* p;
}

async function* once(buf: Buffer): AsyncIterable<Buffer> {
  yield buf;
}

async function prepareStream(
  kv: KvReader,
  archive: Archive,
  name: string,
  target: number,
): Promise<Prepared> {
  const plan = await planRestore(archive, name, target);
  const stats = emptyStats();
  return {
    from: 'stream',
    precision: 'millisecond',
    timeline: plan.timeline.id,
    base: {
      file: plan.base.file,
      offset: plan.base.offset,
      takenAt: plan.base.takenAt,
      bytes: plan.base.bytes,
    },
    dirBase: () => ({ format: 'rdb', chunks: readBase(kv.dir, plan.base) }),
    targetBase: () => ({ bytes: plan.base.bytes, chunks: readBase(kv.dir, plan.base) }),
    commands: () => replayFrames(archive, plan, stats),
    check: () => checkBase(kv.dir, plan.base),
    replay: { fromOffset: plan.fromOffset, cutOffset: plan.cut.offset },
    dropped: () => plan.cut.dropped,
    progress: () => ({
      done: Math.max(0, stats.offset - plan.fromOffset),
      total: Math.max(1, plan.cut.offset - plan.fromOffset),
    }),
    stats,
  };
}

async function prepareAof(kv: KvReader, name: string, target: number): Promise<Prepared> {
  const plan = await planAofRestore(kv, name, target);
  const stats = emptyStats();
  const cut: AofCut = { dropped: null };
  const format = plan.base.format === 'aof' ? 'aof' : plan.base.format === 'empty' ? null : 'rdb';
  const total = plan.files.reduce((n, f) => n + f.capturedEnd - f.chunkStart, 0);
  return {
    from: 'aof',
    precision: plan.precision,
    timeline: null,
    base: { file: plan.base.file, offset: null, takenAt: plan.baseTime, bytes: plan.base.bytes },
    dirBase: () => (format === null ? null : { format, chunks: readAofBase(kv, plan.base) }),
    targetBase: () => {
      if (format === 'rdb') return { bytes: plan.base.bytes, chunks: readAofBase(kv, plan.base) };
      const empty = emptyRdb();
      return { bytes: empty.length, chunks: once(empty) };
    },
    // A base made of commands goes to a target ahead of the incr commands, on an empty snapshot.
    commands: () => {
      const incr = aofReplay(kv, plan, stats, cut);
      return format === 'aof' ? concat(readAofBase(kv, plan.base), incr) : incr;
    },
    check: async () => {
      for await (const _ of readAofBase(kv, plan.base)) {
        // reading is the check
      }
    },
    replay: { fromOffset: null, cutOffset: null },
    dropped: () => cut.dropped,
    progress: () => ({ done: stats.offset, total: Math.max(1, total) }),
    stats,
  };
}

/** --from auto: the stream when the source has one, else the AOF chunks. */
async function chooseFrom(
  options: RestoreOptions,
  archive: Archive,
  kv: KvReader,
): Promise<'stream' | 'aof'> {
  if (options.from !== 'auto') return options.from;
  if ((await archive.timelines(options.name)).length > 0) return 'stream';
  return (await new AofArchive(kv).files(options.name)).length > 0 ? 'aof' : 'stream';
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
    // Fail on a used --out before reading anything.
    if (options.out !== undefined) await checkOutDir(options.out);
    const kv = await openReader(options.store);
    try {
      const archive = new Archive(kv);
      const from = await chooseFrom(options, archive, kv);
      const latest =
        from === 'stream'
          ? await latestStream(archive, options.name)
          : await latestAof(kv, options.name);
      const until = resolveTime(options.until, {
        now: Date.now(),
        tz: options.tz ?? machineZone(),
        ...(latest === undefined ? {} : { latest }),
      });
      // Every command that takes a time says what it understood, before it acts.
      out.note(describeInstant(until));
      const prepared =
        from === 'stream'
          ? await prepareStream(kv, archive, options.name, until.ms)
          : await prepareAof(kv, options.name, until.ms);
      const { stats } = prepared;
      if (options.dryRun) {
        for await (const _ of prepared.commands()) {
          // counting only
        }
        await prepared.check();
        report(options, until, prepared, null, began);
        return 0;
      }
      const progress = new Progress('restore', () => ({
        ...prepared.progress(),
        text: `${stats.commands} commands, ${formatBytes(stats.bytes)}`,
      }));
      let into: Record<string, unknown>;
      if (options.out !== undefined) {
        const dir = path.resolve(options.out);
        progress.start();
        try {
          await writeRestoreDir(dir, prepared.dirBase(), prepared.commands());
        } finally {
          progress.stop();
        }
        into = {
          kind: 'dir',
          dir,
          command: `redis-server --dir ${shellQuote(dir)} --appendonly yes`,
        };
      } else {
        const { endpoint, tlsOptions } = redisConnection(options.target!, options);
        // The target must not receive a base that fails its checksum: check it before sending.
        await prepared.check();
        progress.start();
        try {
          await loadTarget(
            {
              endpoint,
              ...(tlsOptions ? { tlsOptions } : {}),
              ...(options.serveHost !== undefined ? { serveHost: options.serveHost } : {}),
              idleTimeoutMs: Number(options.targetTimeout),
              log: silentLogger(),
            },
            prepared.targetBase(),
            prepared.commands(),
          );
        } finally {
          progress.stop();
        }
        into = { kind: 'target', url: redactUrl(options.target!) };
      }
      report(options, until, prepared, into, began);
      return 0;
    } finally {
      await kv.close();
    }
  } catch (err) {
    return reportError(err, options.json === true);
  }
}

async function latestStream(archive: Archive, name: string): Promise<number | undefined> {
  const times = (await archive.timelines(name)).map((t) => t.lastTime);
  const seen = await archive.seen(name);
  if (seen !== undefined) times.push(seen.time);
  return times.length === 0 ? undefined : Math.max(...times);
}

async function latestAof(kv: KvReader, name: string): Promise<number | undefined> {
  const stats = await new AofArchive(kv).stats(name);
  return stats.lastChunkAt ?? undefined;
}

function report(
  options: RestoreOptions,
  until: ResolvedTime,
  p: Prepared,
  into: Record<string, unknown> | null,
  began: number,
): void {
  const { stats } = p;
  const dropped = p.dropped();
  const result = {
    ok: true,
    dryRun: options.dryRun === true,
    source: options.name,
    from: p.from,
    precision: p.precision,
    until: { input: until.input, utc: isoUtc(until.ms), zone: until.zone },
    timeline: p.timeline,
    base: {
      file: p.base.file,
      offset: p.base.offset,
      takenAt: isoUtc(p.base.takenAt),
      bytes: p.base.bytes,
    },
    replay: {
      ...p.replay,
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
  const where =
    p.from === 'stream' ? `timeline ${p.timeline}` : `the AOF chunks (${p.precision} precision)`;
  out.line(`${options.dryRun ? 'plan' : 'restored'}: source ${options.name}, ${where}`);
  out.line(
    `  base         ${p.base.file === null ? '(none: the AOF starts empty)' : path.join(options.store, p.base.file)} (${p.base.offset === null ? '' : `offset ${p.base.offset}, `}taken ${isoUtc(p.base.takenAt)}, ${formatBytes(p.base.bytes)})`,
  );
  const range =
    p.replay.fromOffset === null ? '' : `offsets ${p.replay.fromOffset}..${p.replay.cutOffset}: `;
  out.line(
    `  replay       ${range}${stats.writes} writes in ${stats.segments} ${p.from === 'stream' ? 'segments' : 'chunks'} (${formatBytes(stats.bytes)})`,
  );
  out.line(
    `  last write   ${stats.last === null ? 'none after the base' : `${isoUtc(stats.last.time)}  ${p.from === 'stream' ? 'offset' : 'byte'} ${stats.last.offset}  ${stats.last.command.toUpperCase()}`}`,
  );
  if (dropped !== null) {
    const why =
      dropped.reason === 'open-at-archive-end'
        ? 'the archive ends inside it'
        : 'the target time falls inside it';
    out.line(
      `  dropped      a transaction (MULTI at ${p.from === 'stream' ? 'offset' : 'byte'} ${dropped.multiAt}${dropped.time === null ? '' : `, ${isoUtc(dropped.time)}`}, ${dropped.commands} commands): ${why}`,
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
