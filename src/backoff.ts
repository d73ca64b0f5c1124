/** Exponential backoff with full jitter, reset once a connection has proved healthy. */
export class Backoff {
  private attempt = 0;

  constructor(
    private readonly minMs = 200,
    private readonly maxMs = 10_000,
  ) {}

  next(): number {
    const ceiling = Math.min(this.maxMs, this.minMs * 2 ** this.attempt);
    this.attempt++;
    return Math.round(this.minMs / 2 + Math.random() * (ceiling - this.minMs / 2));
  }

  reset(): void {
    this.attempt = 0;
  }
}
