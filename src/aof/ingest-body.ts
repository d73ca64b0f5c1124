import type http from 'node:http';
import { Transform } from 'node:stream';
import type { RfError } from '../errors.js';
import { ingestUsage } from './ingest-check.js';

/** Request bodies as the ingest server takes them: bounded, and refused with the right status. */

/** Largest JSON body: a file record, a gap, a size sample. */
const MAX_JSON = 1024 * 1024;

/** The HTTP status an error is answered with, where its code alone does not say. */
export const statusOf = new WeakMap<RfError, number>();
export function refusal(status: number, err: RfError): RfError {
  statusOf.set(err, status);
  return err;
}

/** Passes at most `max` bytes; one more is an error (413) that stops the upload. */
export function atMost(max: number): Transform {
  let seen = 0;
  const t = new Transform({
    transform(piece: Buffer, _enc, done) {
      seen += piece.length;
      if (seen > max) {
        done(refusal(413, ingestUsage(`the base body runs past the ${max} bytes it announced`)));
      } else done(null, piece);
    },
  });
  // The body flows from the moment it is piped, before the store's pipeline takes it: an error
  // before then stays on the stream (its `errored`), where that pipeline finds it.
  t.on('error', () => undefined);
  return t;
}

/**
 * Chunk bytes held at once, across requests. A request takes its chunk's length before reading
 * it and gives it back once stored; one that does not fit waits. A chunk larger than the whole
 * budget never gets here (413).
 */
export class ByteBudget {
  private used = 0;
  private readonly waiting: { bytes: number; go: () => void }[] = [];

  constructor(private readonly max: number) {}

  take(bytes: number): Promise<void> {
    if (this.waiting.length === 0 && this.fits(bytes)) {
      this.used += bytes;
      return Promise.resolve();
    }
    return new Promise((go) => this.waiting.push({ bytes, go }));
  }

  give(bytes: number): void {
    this.used -= bytes;
    for (
      let next = this.waiting[0];
      next !== undefined && this.fits(next.bytes);
      next = this.waiting[0]
    ) {
      this.waiting.shift();
      this.used += next.bytes;
      next.go();
    }
  }

  private fits(bytes: number): boolean {
    return this.used === 0 || this.used + bytes <= this.max;
  }
}

export async function readBody(req: http.IncomingMessage, max: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > max)
    throw refusal(413, ingestUsage(`body of ${declared} bytes is larger than the ${max} allowed`));
  const parts: Buffer[] = [];
  let total = 0;
  for await (const piece of req as AsyncIterable<Buffer>) {
    total += piece.length;
    if (total > max) throw refusal(413, ingestUsage(`body larger than the ${max} bytes allowed`));
    parts.push(piece);
  }
  return Buffer.concat(parts, total);
}

export async function readJson(req: http.IncomingMessage): Promise<unknown> {
  const body = await readBody(req, MAX_JSON);
  try {
    return JSON.parse(body.toString('utf8')) as unknown;
  } catch {
    throw ingestUsage('the body is not JSON');
  }
}
