import { isRfError, RfError } from '../../errors.js';
import type { Logger } from '../../logger.js';
import { RedisReplyError } from '../../resp/client.js';
import { ScratchServer } from '../scratch.js';
import {
  type ConflictMode,
  expiryFor,
  keyName,
  NameList,
  restoreCommand,
  type TtlMode,
} from './decide.js';
import {
  loadScanScript,
  type ReadCounters,
  type ScratchKey,
  scanKeys,
  scratchKeyspace,
  settle,
} from './read.js';
import { freezeExpiriesCommand } from './scripts.js';
import { type IntoTarget, type KeyCommands, openTarget, type TargetConnection } from './target.js';

export interface IntoOptions {
  /** The state at T as `--target` would receive it: an RDB, then the commands after it. */
  base: { bytes: number; chunks: AsyncIterable<Buffer> };
  commands: AsyncIterable<Buffer>;
  until: number;
  target: TargetConnection;
  /** `--key` globs (none: every key) and `--db` numbers (none: every db). */
  keys: readonly Buffer[];
  dbs: readonly number[];
  conflict: ConflictMode;
  ttl: TtlMode;
  dryRun: boolean;
  redisServer?: string;
  idleTimeoutMs: number;
  log: Logger;
  /** Counters the run keeps up to date, for a progress display. */
  progress?: IntoProgress;
  /** Told when the scratch server holds the state at T, before the keys are copied. */
  onLoaded?: () => void;
}

export function emptyIntoProgress(): IntoProgress {
  return { scanned: 0, total: 0, written: 0, skipped: 0, expired: 0 };
}

export interface IntoProgress extends ReadCounters {
  /** Keys in the dbs read, in the state at T. */
  total: number;
  written: number;
  skipped: number;
  expired: number;
}

export interface IntoResult {
  target: string;
  targetKind: 'standalone' | 'cluster';
  dbs: number[];
  /** Keys of the state at T that the selection matched. */
  matched: number;
  written: number;
  /** Written over a key the target held (--conflict replace). */
  replaced: number;
  /** Left as the target has them (--conflict skip). */
  skipped: number;
  expired: number;
  /** The first 100 selected keys that the target already held. */
  conflicts: string[];
  conflictCount: number;
  /** --dry-run: the first 100 names of each. */
  plan: { created: string[]; replaced: string[]; skipped: string[]; expired: string[] } | null;
}

/**
 * `rf restore --into`: rebuilds the state at T in a private scratch redis-server, then copies
 * the selected keys to a running target with DUMP and RESTORE, batch by batch. Nothing else on
 * the target changes, and no target key is ever deleted.
 */
export async function restoreInto(options: IntoOptions): Promise<IntoResult> {
  const progress = options.progress ?? emptyIntoProgress();
  const target = await openTarget(options.target);
  let scratch: ScratchServer | null = null;
  try {
    for (const db of options.dbs) await target.checkDb(db);
    scratch = await ScratchServer.start({
      ...(options.redisServer === undefined ? {} : { redisServer: options.redisServer }),
      log: options.log,
    });
    await scratch.load(options.base, withFreeze(options.commands), options.idleTimeoutMs);
    options.onLoaded?.();
    const client = await scratch.connect({ returnBuffers: true, timeoutMs: options.idleTimeoutMs });
    try {
      const keyspace = await scratchKeyspace(client);
      const dbs = [...keyspace.keys()]
        .filter((db) => options.dbs.length === 0 || options.dbs.includes(db))
        .sort((a, b) => a - b);
      for (const db of dbs) await target.checkDb(db);
      progress.total = dbs.reduce((n, db) => n + (keyspace.get(db) ?? 0), 0);
      await settle(client, dbs);
      const sha = await loadScanScript(client);
      const run = new IntoRun(options, target, progress);
      const scan = (db: number, payload: boolean) =>
        scanKeys(client, sha, db, options.keys, payload, progress);
      if (options.dryRun) {
        for (const db of dbs) for await (const batch of scan(db, false)) await run.plan(db, batch);
      } else {
        if (options.conflict === 'fail') {
          for (const db of dbs) {
            if ((await target.dbSize(db)) === 0) continue;
            for await (const batch of scan(db, false)) await run.plan(db, batch);
          }
          run.refuseConflicts();
          progress.scanned = 0;
        }
        for (const db of dbs) {
          let pending: Promise<void> = Promise.resolve();
          // Reading the next batch from the scratch overlaps writing this one to the target.
          for await (const batch of scan(db, true)) {
            await pending;
            pending = run.write(db, batch);
            pending.catch(() => undefined);
          }
          await pending;
        }
      }
      return run.result(dbs);
    } finally {
      client.destroy();
    }
  } finally {
    await scratch?.stop();
    await target.close();
  }
}

async function* withFreeze(commands: AsyncIterable<Buffer>): AsyncIterable<Buffer> {
  yield* commands;
  yield freezeExpiriesCommand();
}

/** The counts and names of one run, and the two things it does with a batch. */
class IntoRun {
  private readonly conflicts = new NameList();
  private readonly created = new NameList();
  private readonly replacedNames = new NameList();
  private readonly expiredNames = new NameList();
  private matched = 0;
  private replaced = 0;

  constructor(
    private readonly options: IntoOptions,
    private readonly target: IntoTarget,
    private readonly progress: IntoProgress,
  ) {}

  /** Which selected keys exist on the target already (EXISTS), and which have expired. */
  async plan(db: number, batch: readonly ScratchKey[]): Promise<void> {
    const now = Date.now();
    const live = batch.filter((k) => {
      if (expiryFor(k.expireAt, this.options.ttl, this.options.until, now).kind !== 'expired')
        return true;
      this.expiredNames.add(k.key);
      return false;
    });
    const replies = await this.send(
      db,
      live.map((k) => ({ key: k.key, commands: [['EXISTS', k.key]] })),
    );
    live.forEach((k, i) => {
      const exists = Number(replies[i]?.[0]) === 1;
      if (!exists) this.created.add(k.key);
      else if (this.options.conflict === 'replace') this.replacedNames.add(k.key);
      else this.conflicts.add(k.key);
    });
  }

  /** --conflict fail: nothing is written when a selected key is already on the target. */
  refuseConflicts(): void {
    const { count, names } = this.conflicts;
    if (count === 0) return;
    throw new RfError(
      'RF_INTO_CONFLICT',
      `${count} selected key${count === 1 ? '' : 's'} already exist${count === 1 ? 's' : ''} on ${this.target.where}; nothing was written`,
      {
        details: { conflicts: names, conflictCount: count },
        hint: 'keep them with --conflict skip, overwrite them with --conflict replace, or narrow --key',
      },
    );
  }

  async write(db: number, batch: readonly ScratchKey[]): Promise<void> {
    const now = Date.now();
    const replace = this.options.conflict === 'replace';
    const items: KeyCommands[] = [];
    for (const k of batch) {
      const expiry = expiryFor(k.expireAt, this.options.ttl, this.options.until, now);
      if (expiry.kind === 'expired') {
        this.progress.expired++;
        this.expiredNames.add(k.key);
        continue;
      }
      const restore = restoreCommand(k.key, k.payload!, expiry, replace);
      items.push({ key: k.key, commands: replace ? [['EXISTS', k.key], restore] : [restore] });
    }
    const replies = await this.send(db, items);
    items.forEach((item, i) => {
      const reply = replies[i]!;
      const restored = reply[reply.length - 1];
      if (restored instanceof RedisReplyError) {
        if (restored.prefix === 'BUSYKEY') {
          this.progress.skipped++;
          this.conflicts.add(item.key);
          return;
        }
        throw new RfError(
          'RF_INTO_REFUSED',
          `${this.target.where} refused RESTORE of ${JSON.stringify(keyName(item.key))} in db ${db}: ${restored.message}; ${this.progress.written} keys were written before it`,
          {
            details: {
              key: keyName(item.key),
              db,
              reply: restored.message,
              written: this.progress.written,
            },
            hint: 'fix what the reply names (memory, a Redis older than the source), then run the restore again with --conflict skip',
          },
        );
      }
      this.progress.written++;
      if (replace && Number(reply[0]) === 1) {
        this.replaced++;
        this.conflicts.add(item.key);
      }
    });
  }

  result(dbs: number[]): IntoResult {
    const p = this.progress;
    const dry = this.options.dryRun;
    this.matched = dry
      ? this.created.count +
        this.replacedNames.count +
        this.conflicts.count +
        this.expiredNames.count
      : p.written + p.skipped + p.expired;
    return {
      target: this.target.where,
      targetKind: this.target.kind,
      dbs,
      matched: this.matched,
      written: p.written,
      replaced: dry ? this.replacedNames.count : this.replaced,
      skipped: dry ? (this.options.conflict === 'replace' ? 0 : this.conflicts.count) : p.skipped,
      expired: dry ? this.expiredNames.count : p.expired,
      conflicts: this.conflicts.names,
      conflictCount: this.conflicts.count,
      plan: dry
        ? {
            created: this.created.names,
            replaced: this.replacedNames.names,
            skipped: this.conflicts.names,
            expired: this.expiredNames.names,
          }
        : null,
    };
  }

  /** A target that goes away mid-run: say how far the run got, and how to finish it. */
  private async send(db: number, items: readonly KeyCommands[]): Promise<unknown[][]> {
    if (items.length === 0) return [];
    try {
      return await this.target.send(db, items);
    } catch (err) {
      if (!isRfError(err, 'RF_CONNECT') && !isRfError(err, 'RF_TIMEOUT')) throw err;
      const written = this.progress.written;
      throw new RfError(
        'RF_INTO_INTERRUPTED',
        `lost ${this.target.where} during the restore: ${written} keys were written, up to ${items.length} more may have been`,
        {
          details: { written, inFlight: items.length, target: this.target.where },
          hint: 'once the target is back, run the same restore again with --conflict skip: it writes only the keys still missing',
          cause: err,
        },
      );
    }
  }
}
