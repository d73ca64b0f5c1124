/** A one-line progress bar on stderr, only when stderr is a terminal; silent otherwise. */
export class Progress {
  private timer: NodeJS.Timeout | null = null;
  private readonly enabled: boolean;

  constructor(
    private readonly label: string,
    private readonly read: () => { done: number; total: number; text?: string },
    enabled = process.stderr.isTTY === true,
  ) {
    this.enabled = enabled;
  }

  start(): this {
    if (this.enabled) this.timer = setInterval(() => this.draw(), 200);
    return this;
  }

  stop(): void {
    if (this.timer === null) return;
    clearInterval(this.timer);
    this.timer = null;
    this.draw();
    process.stderr.write('\n');
  }

  private draw(): void {
    const { done, total, text } = this.read();
    const ratio = total > 0 ? Math.min(1, done / total) : 1;
    const width = 30;
    const filled = Math.round(ratio * width);
    const bar = `${'#'.repeat(filled)}${'.'.repeat(width - filled)}`;
    process.stderr.write(
      `\r${this.label} [${bar}] ${(ratio * 100).toFixed(0).padStart(3)}%${text ? `  ${text}` : ''}`,
    );
  }
}
