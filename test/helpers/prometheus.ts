import { type ChildProcess, spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitFor } from './load.js';
import { freePort } from './redis.js';

/** deploy/prometheus of this repository: the rules and their unit tests as shipped. */
export const PROMETHEUS_DEPLOY = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  '../../deploy/prometheus',
);

export interface ToolResult {
  code: number | null;
  output: string;
}

/** Runs a Prometheus tool (promtool, prometheus) to completion; a missing binary is an error. */
export function runTool(
  bin: string,
  args: string[],
  options: { cwd?: string; timeoutMs?: number } = {},
): Promise<ToolResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 20_000);
    child.on('error', (err) =>
      reject(
        new Error(
          `${bin} could not run (${err.message}): install Debian's prometheus package, as .ci/run does`,
        ),
      ),
    );
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

/** A real prometheus server on a free loopback port, its data in `dir`. */
export class PrometheusServer {
  private constructor(
    private readonly child: ChildProcess,
    readonly url: string,
    private readonly output: () => string,
  ) {}

  /**
   * Scrapes each of `targets` (host:port serving /metrics) every second as job "rf", with
   * `ruleFiles` loaded and evaluated every second.
   */
  static async start(
    dir: string,
    targets: string[],
    ruleFiles: string[],
  ): Promise<PrometheusServer> {
    const config = path.join(dir, 'prometheus.yml');
    await writeFile(
      config,
      JSON.stringify({
        global: { scrape_interval: '1s', evaluation_interval: '1s' },
        rule_files: ruleFiles,
        scrape_configs: [{ job_name: 'rf', static_configs: [{ targets }] }],
      }),
    );
    const port = await freePort();
    const listen = `127.0.0.1:${port}`;
    const child = spawn(
      'prometheus',
      [
        `--config.file=${config}`,
        `--storage.tsdb.path=${path.join(dir, 'tsdb')}`,
        `--web.listen-address=${listen}`,
        '--log.level=warn',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
    const started = new Promise<never>((_, reject) => {
      child.on('error', (err) =>
        reject(new Error(`prometheus could not run (${err.message}): install Debian's prometheus`)),
      );
      child.on('exit', (code) => reject(new Error(`prometheus exited ${code}:\n${output}`)));
    });
    started.catch(() => undefined);
    const server = new PrometheusServer(child, `http://${listen}`, () => output);
    await Promise.race([
      started,
      waitFor(
        async () => (await fetch(`${server.url}/-/ready`).catch(() => null))?.status === 200,
        'prometheus to be ready',
        30_000,
      ),
    ]);
    return server;
  }

  /** GET /api/v1/<what>, its parsed JSON body (errors included: the caller checks `status`). */
  async api(what: string): Promise<{ status: string; data?: unknown; error?: string }> {
    const res = await fetch(`${this.url}/api/v1/${what}`);
    return (await res.json()) as { status: string; data?: unknown; error?: string };
  }

  /** An instant query's vector, `[]` while it has no result. */
  async query(expr: string): Promise<Array<{ metric: Record<string, string>; value: unknown }>> {
    const body = await this.api(`query?query=${encodeURIComponent(expr)}`);
    if (body.status !== 'success') throw new Error(`query ${expr} failed: ${body.error}`);
    return (body.data as { result: Array<{ metric: Record<string, string>; value: unknown }> })
      .result;
  }

  log(): string {
    return this.output();
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
}
