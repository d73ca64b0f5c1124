/**
 * Checks the framing of RESP2 replies before redis-parser sees them. redis-parser (3.0, 2017)
 * trusts what it is given: `*4294967296` throws RangeError from inside its `execute`, a deep
 * enough nest of arrays overflows the stack, `:abc` becomes a number, `$-5` becomes null. Each
 * of those came from a peer rf connected to, not from a bug of rf's; here each is a
 * ProtocolViolation that the client turns into RF_PROTOCOL. Bulk payloads are skipped by count,
 * so only the header lines are scanned.
 */

/** What Redis itself allows for a bulk string (proto-max-bulk-len, config.c). */
const MAX_BULK = 512 * 1024 * 1024;
/** Far beyond any reply rf asks for (CONFIG GET *, INFO, ROLE, SCAN pages). */
const MAX_ARRAY = 16 * 1024 * 1024;
/** Replies rf reads nest two or three deep. */
const MAX_DEPTH = 64;
/** A status, error or length line; a longer one is not a reply header. */
const MAX_LINE = 1024 * 1024;

export class ProtocolViolation extends Error {
  override readonly name = 'ProtocolViolation';
}

export class ReplyGuard {
  /** Elements still expected by each open array, innermost last. */
  private readonly open: number[] = [];
  /** Payload bytes (and its CRLF) still to skip. */
  private bulkLeft = 0;
  private line: Buffer[] = [];
  private lineBytes = 0;
  private position = 0;

  /** True between the first byte of a reply and its last. */
  get inReply(): boolean {
    return this.bulkLeft > 0 || this.lineBytes > 0 || this.open.length > 0;
  }

  /** Scans a chunk; throws ProtocolViolation at the first byte that breaks the framing. */
  push(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length) {
      if (this.bulkLeft > 0) {
        const n = Math.min(this.bulkLeft, chunk.length - at);
        this.bulkLeft -= n;
        at += n;
        // The payload's CRLF is checked by the parser; its end closes one element.
        if (this.bulkLeft === 0) this.element();
        continue;
      }
      const nl = chunk.indexOf(10, at);
      const end = nl === -1 ? chunk.length : nl + 1;
      this.lineBytes += end - at;
      if (this.lineBytes > MAX_LINE) this.violation(`a reply line longer than ${MAX_LINE} bytes`);
      this.line.push(chunk.subarray(at, end));
      this.position += end - at;
      at = end;
      if (nl === -1) return;
      const whole = this.line.length === 1 ? this.line[0]! : Buffer.concat(this.line);
      this.line = [];
      this.lineBytes = 0;
      this.header(whole);
    }
  }

  private header(line: Buffer): void {
    if (line.length < 3 || line[line.length - 2] !== 13)
      this.violation('a reply line without CRLF');
    const type = String.fromCharCode(line[0]!);
    const text = line.toString('latin1', 1, line.length - 2);
    switch (type) {
      case '+':
      case '-':
        if (/[\r\n]/.test(text)) this.violation('a CR or LF inside a status line');
        this.element();
        return;
      case ':':
        if (!/^-?\d{1,19}$/.test(text))
          this.violation(`an integer reply of ${JSON.stringify(text.slice(0, 40))}`);
        this.element();
        return;
      case '$': {
        const n = this.length(text, MAX_BULK, 'bulk');
        if (n === -1) this.element();
        else this.bulkLeft = n + 2;
        return;
      }
      case '*': {
        const n = this.length(text, MAX_ARRAY, 'array');
        if (n <= 0) {
          this.element();
          return;
        }
        if (this.open.length >= MAX_DEPTH)
          this.violation(`arrays nested more than ${MAX_DEPTH} deep`);
        this.open.push(n);
        return;
      }
      default:
        this.violation(`a reply of type ${JSON.stringify(type)}`);
    }
  }

  private length(text: string, max: number, what: string): number {
    if (text === '-1') return -1;
    if (!/^\d{1,10}$/.test(text) || Number(text) > max)
      this.violation(`a ${what} length of ${JSON.stringify(text.slice(0, 40))} (at most ${max})`);
    return Number(text);
  }

  /** One element is complete: it may complete the arrays around it. */
  private element(): void {
    for (;;) {
      const last = this.open.length - 1;
      if (last < 0) return;
      this.open[last]!--;
      if (this.open[last]! > 0) return;
      this.open.pop();
    }
  }

  private violation(what: string): never {
    throw new ProtocolViolation(`${what}, near byte ${this.position}`);
  }
}
