import { FrameScanner } from '../../resp/frames.js';
import { keyArgs } from '../../resp/key-args.js';
import { keyName } from './decide.js';
import { type Selection, selected } from './read.js';

/** A transaction of the replay whose keys the selection splits, shown by a few of its keys. */
export interface SplitTransaction {
  selected: string[];
  unselected: string[];
}

const EXAMPLES = 5;
const KEYS_SHOWN = 3;

/**
 * Watches the commands replayed into the scratch server for MULTI … EXEC blocks (Lua and
 * function effects among them) that wrote both selected and unselected keys. The scratch state
 * holds each of them whole; the copy takes only the selected part, and the operator is told,
 * as PBM warns when a selective restore splits a transaction's namespaces.
 */
export class SplitWatch {
  count = 0;
  readonly examples: SplitTransaction[] = [];
  private readonly scanner = new FrameScanner();
  private db = 0;
  private inMulti = false;
  private picked: Buffer[] = [];
  private left: Buffer[] = [];

  constructor(private readonly selection: Selection) {}

  async *tap(commands: AsyncIterable<Buffer>): AsyncIterable<Buffer> {
    for await (const chunk of commands) {
      this.scan(chunk);
      yield chunk;
    }
  }

  private scan(chunk: Buffer): void {
    for (const frame of this.scanner.push(chunk)) {
      if (frame.kind !== 'command' || frame.args.length === 0) continue;
      const name = frame.args[0]!.toString('latin1').toLowerCase();
      if (name === 'select') this.db = Number(frame.args[1]?.toString('latin1'));
      else if (name === 'multi') {
        this.inMulti = true;
        this.picked = [];
        this.left = [];
      } else if (name === 'exec') this.exec();
      else if (this.inMulti) this.note(name, frame.args);
    }
  }

  private note(name: string, args: Buffer[]): void {
    const keys = keyArgs(name, args);
    if (keys.kind === 'every-key') {
      // FLUSHDB, SWAPDB: every key changes, selected or not.
      this.left.push(Buffer.from(`(${name.toUpperCase()})`));
      this.picked.push(Buffer.from(`(${name.toUpperCase()})`));
    } else if (keys.kind === 'keys') {
      for (const i of keys.indices) {
        const key = args[i];
        if (key === undefined) continue;
        (selected(this.selection, this.db, key) ? this.picked : this.left).push(key);
      }
    }
  }

  private exec(): void {
    if (this.inMulti && this.picked.length > 0 && this.left.length > 0) {
      this.count++;
      if (this.examples.length < EXAMPLES) {
        this.examples.push({
          selected: this.picked.slice(0, KEYS_SHOWN).map(keyName),
          unselected: this.left.slice(0, KEYS_SHOWN).map(keyName),
        });
      }
    }
    this.inMulti = false;
  }
}
