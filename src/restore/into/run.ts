import { isRfError, RfError } from '../../errors.js';
import { dumpPayloadLength } from '../../rdb/entries.js';
import { RedisReplyError } from '../../resp/client.js';
import { type EncodedBatch, RestoreBatchWriter } from './batch.js';
import { expiryFor, keyName, NameList } from './decide.js';
import type { IntoOptions, IntoProgress, IntoResult } from './into.js';
import type { KeyBatcher, ScratchKey } from './read.js';
import type { IntoTarget, KeyCommands } from './target.js';

/** The counts and names of one run, and the two things it does with a batch. */
export class IntoRun {
  private readonly conflicts = new NameList();
  private readonly created = new NameList();
  private readonly replacedNames = new NameList();
  private readonly expiredNames = new NameList();
  private readonly tooLarge = new NameList();
  private matched = 0;
  private replaced = 0;

  constructor(
    private readonly options: IntoOptions,
    private readonly target: IntoTarget,
    private readonly progress: IntoProgress,
    private readonly maxBulk: number,
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

  /**
   * The walk's keys as RESTORE commands (batch.ts), each key's expiry decided as it is read; a
   * value longer than the target takes in one RESTORE is left out and named.
   */
  writer(): KeyBatcher<EncodedBatch> {
    const writer = new RestoreBatchWriter(this.options.conflict === 'replace');
    const { ttl, until } = this.options;
    return {
      get size() {
        return writer.size;
      },
      get bytes() {
        return writer.bytes;
      },
      add: (key, expireAt, type, value, version) => {
        const expiry = expiryFor(expireAt, ttl, until, expireAt < 0 ? 0 : Date.now());
        if (expiry.kind === 'expired') {
          this.progress.expired++;
          this.expiredNames.add(key);
          return;
        }
        if (dumpPayloadLength(value.length) > this.maxBulk) {
          // Refused by name, not split: a value in parts would be visible half written.
          this.tooLarge.add(key);
          return;
        }
        writer.add(key, type, value, version, expiry);
      },
      take: () => writer.take(),
    };
  }

  async write(db: number, batch: EncodedBatch): Promise<void> {
    const { keys, perKey } = batch;
    if (keys.length === 0) return;
    const replies = await this.interrupted(keys.length, () => this.target.sendBatch(db, batch));
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i]!;
      const restored = replies[i * perKey + perKey - 1];
      if (restored instanceof RedisReplyError) {
        if (restored.prefix === 'BUSYKEY') {
          this.progress.skipped++;
          this.conflicts.add(key);
          continue;
        }
        throw new RfError(
          'RF_INTO_REFUSED',
          `${this.target.where} refused RESTORE of ${JSON.stringify(keyName(key))} in db ${db}: ${restored.message}; ${this.progress.written} keys were written before it`,
          {
            details: {
              key: keyName(key),
              db,
              reply: restored.message,
              written: this.progress.written,
            },
            hint: 'fix what the reply names (memory, a Redis older than the source), then run the restore again with --conflict skip',
          },
        );
      }
      this.progress.written++;
      // Under --conflict replace, an EXISTS before each RESTORE: 1 when it replaced a key.
      if (perKey === 2 && Number(replies[i * perKey]) === 1) {
        this.replaced++;
        this.conflicts.add(key);
      }
    }
  }

  /** Values longer than the target's proto-max-bulk-len: the rest was written, these are named. */
  refuseTooLarge(): void {
    const { count, names } = this.tooLarge;
    if (count === 0) return;
    throw new RfError(
      'RF_VALUE_TOO_LARGE',
      `${count} value${count === 1 ? ' is' : 's are'} longer than ${this.target.where} takes in one RESTORE (proto-max-bulk-len ${this.maxBulk} bytes): ${names.slice(0, 10).join(', ')}; the other ${this.progress.written} keys were written`,
      {
        details: {
          tooLarge: names,
          tooLargeCount: count,
          maxBulk: this.maxBulk,
          written: this.progress.written,
        },
        hint: 'raise proto-max-bulk-len on the target (CONFIG SET proto-max-bulk-len), then run the restore again with --conflict skip',
      },
    );
  }

  result(dbs: number[]): Omit<IntoResult, 'splitTransactions' | 'functions' | 'scratch'> {
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

  /** The EXISTS checks of a plan. */
  private async send(db: number, items: readonly KeyCommands[]): Promise<unknown[][]> {
    if (items.length === 0) return [];
    return this.interrupted(items.length, () => this.target.send(db, items));
  }

  /** A target that goes away mid-run: say how far the run got, and how to finish it. */
  private async interrupted<T>(keys: number, send: () => Promise<T>): Promise<T> {
    try {
      return await send();
    } catch (err) {
      if (!isRfError(err, 'RF_CONNECT') && !isRfError(err, 'RF_TIMEOUT')) throw err;
      const written = this.progress.written;
      throw new RfError(
        'RF_INTO_INTERRUPTED',
        `lost ${this.target.where} during the restore: ${written} keys were written, up to ${keys} more may have been`,
        {
          details: { written, inFlight: keys, target: this.target.where },
          hint: 'once the target is back, run the same restore again with --conflict skip: it writes only the keys still missing',
          cause: err,
        },
      );
    }
  }
}
