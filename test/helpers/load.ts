import type { RedisClient } from '../../src/resp/client.js';

/**
 * A write load whose every command the master propagates verbatim, so the archive can be
 * compared with what was sent: `SET load:<i> <i>` then `RPUSH load:list <i>`, in batches.
 */
export class WriteLoad {
  sent = 0;
  private running = false;
  private done: Promise<void> = Promise.resolve();
  errors: unknown[] = [];

  constructor(
    protected readonly client: RedisClient,
    private readonly batch = 20,
    private readonly pauseMs = 5,
  ) {}

  /** One round of writes; a load of another shape overrides it. */
  protected step(): Promise<unknown> {
    const calls: Promise<unknown>[] = [];
    for (let j = 0; j < this.batch; j++) {
      const i = this.sent++;
      calls.push(this.client.call('SET', `load:${i}`, String(i)));
      calls.push(this.client.call('RPUSH', 'load:list', String(i)));
    }
    return Promise.all(calls);
  }

  start(): void {
    this.running = true;
    this.done = (async () => {
      while (this.running) {
        try {
          await this.step();
        } catch (err) {
          this.errors.push(err);
          this.running = false;
        }
        await new Promise((r) => setTimeout(r, this.pauseMs));
      }
    })();
  }

  /**
   * Until `n` more iterations have been sent: a test that wants writes to land during some
   * phase waits for the writes, not for a time that a loaded machine stretches.
   */
  async more(n: number, what = `${n} more writes`): Promise<void> {
    const target = this.sent + n;
    await waitFor(() => this.sent >= target || this.errors.length > 0, what);
    if (this.errors.length > 0) throw this.errors[0];
  }

  async stop(): Promise<number> {
    this.running = false;
    await this.done;
    return this.sent;
  }

  /** What the master propagated for `count` iterations. */
  static expected(count: number, from = 0): string[][] {
    const out: string[][] = [];
    for (let i = from; i < count; i++) {
      out.push(['SET', `load:${i}`, String(i)]);
      out.push(['RPUSH', 'load:list', String(i)]);
    }
    return out;
  }
}

/** Waits until `check` returns true, polling; throws with `what` on timeout. */
export async function waitFor(
  check: () => Promise<boolean> | boolean,
  what: string,
  timeoutMs = 20_000,
  everyMs = 100,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** The master's view of its replicas: INFO replication, parsed. */
export async function replicationInfo(
  client: RedisClient,
): Promise<{ masterOffset: number; replicas: { state: string; offset: number }[] }> {
  const info = await client.info('replication');
  const replicas: { state: string; offset: number }[] = [];
  for (const [k, v] of Object.entries(info)) {
    if (!/^slave\d+$/.test(k)) continue;
    const fields = Object.fromEntries(v.split(',').map((kv) => kv.split('=') as [string, string]));
    replicas.push({ state: fields.state ?? '', offset: Number(fields.offset) });
  }
  return { masterOffset: Number(info.master_repl_offset), replicas };
}
