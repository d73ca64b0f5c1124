import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The built CLI: `npm test` runs `tsc` first (pretest), so tests exercise what ships. */
export const RF_BIN = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  '../../dist/cli/main.js',
);

function ensureBuilt(): void {
  if (!existsSync(RF_BIN))
    throw new Error(`${RF_BIN} is missing: run \`npm run build\` (npm test does it first)`);
}

export interface RfResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs one rf command to completion. */
export function rf(
  args: string[],
  options: { env?: NodeJS.ProcessEnv; timeoutMs?: number; cwd?: string } = {},
): Promise<RfResult> {
  ensureBuilt();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [RF_BIN, ...args], {
      env: { ...process.env, RF_LOG_LEVEL: 'info', ...options.env },
      cwd: options.cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(
        new Error(
          `rf ${args.join(' ')} did not finish in ${options.timeoutMs ?? 30_000} ms\n${stdout}\n${stderr}`,
        ),
      );
    }, options.timeoutMs ?? 30_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

export interface LogLine {
  level: number;
  msg: string;
  [key: string]: unknown;
}

/** Every daemon still running: whatever a test forgot, none outlives the test run. */
const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

/** A long-running `rf listen`, with its JSON log lines parsed as they come. */
export class RfDaemon {
  readonly lines: LogLine[] = [];
  private stderr = '';
  private readonly exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private waiters: (() => void)[] = [];

  private constructor(
    readonly child: ChildProcess,
    readonly args: string[],
  ) {
    let partial = '';
    child.stdout?.on('data', (d: Buffer) => {
      partial += d.toString();
      const parts = partial.split('\n');
      partial = parts.pop() ?? '';
      for (const p of parts) {
        if (p.trim() === '') continue;
        try {
          this.lines.push(JSON.parse(p) as LogLine);
        } catch {
          this.lines.push({ level: 0, msg: p });
        }
      }
      this.notify();
    });
    child.stderr?.on('data', (d: Buffer) => {
      this.stderr += d.toString();
    });
    this.exit = new Promise((resolve) =>
      child.on('close', (code, signal) => {
        this.notify();
        resolve({ code, signal });
      }),
    );
  }

  static start(args: string[], env: NodeJS.ProcessEnv = {}): RfDaemon {
    ensureBuilt();
    const child = spawn(process.execPath, [RF_BIN, 'listen', ...args], {
      env: { ...process.env, RF_LOG_LEVEL: 'debug', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    live.add(child);
    child.on('close', () => live.delete(child));
    return new RfDaemon(child, args);
  }

  get output(): string {
    return `${this.lines.map((l) => JSON.stringify(l)).join('\n')}\n${this.stderr}`;
  }

  /** Waits for a log line matching `predicate`, counting only lines after `after` (an index). */
  async waitForLog(
    predicate: (l: LogLine) => boolean,
    timeoutMs = 20_000,
    after = 0,
  ): Promise<LogLine> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.lines.slice(after).find(predicate);
      if (found) return found;
      if (this.child.exitCode !== null || this.child.signalCode !== null) {
        throw new Error(
          `rf listen exited (${this.child.exitCode ?? this.child.signalCode}) before the expected log line\n${this.output}`,
        );
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for a log line\n${this.output}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 200));
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  async stop(
    signal: NodeJS.Signals = 'SIGTERM',
  ): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    return this.exit;
  }

  exited(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    return this.exit;
  }

  private notify(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}

/**
 * Waits until the store's AOF chunks hold every byte of the master's incr files (read from the
 * master's appendonlydir and from `rf info --json`), or for Redis 6 every byte of its
 * appendonly.aof after the RDB preamble.
 */
export async function aofCaughtUp(
  store: string,
  masterDir: string,
  timeoutMs = 30_000,
): Promise<void> {
  const { existsSync } = await import('node:fs');
  const { open, readdir, stat } = await import('node:fs/promises');
  const { waitFor } = await import('./load.js');
  const { rdbLength, startsWithRdb } = await import('../../src/rdb/length.js');
  const dir = path.join(masterDir, 'appendonlydir');
  const single = path.join(masterDir, 'appendonly.aof');
  const commandBytes = async (): Promise<number> => {
    if (existsSync(dir) || !existsSync(single)) {
      let size = 0;
      for (const f of (await readdir(dir)).filter((x) => x.endsWith('.incr.aof')))
        size += (await stat(path.join(dir, f))).size;
      return size;
    }
    const fh = await open(single, 'r');
    try {
      const { size } = await fh.stat();
      const head = Buffer.alloc(5);
      await fh.read(head, 0, 5, 0);
      return startsWithRdb(head) ? size - (await rdbLength(fh, size, single)) : size;
    } finally {
      await fh.close();
    }
  };
  await waitFor(
    async () => {
      const size = await commandBytes();
      const info = JSON.parse((await rf(['info', '--store', store, '--json'])).stdout);
      return info.sources[0]?.aof?.bytes === size;
    },
    'the AOF chunks to hold every byte of the incr files',
    timeoutMs,
    250,
  );
}
