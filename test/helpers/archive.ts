import { Archive } from '../../src/store/archive.js';
import { nameOf, parseArgs } from '../../src/store/commands.js';
import { Store } from '../../src/store/store.js';
import type { BaseMeta, Entry, Timeline } from '../../src/store/types.js';

export interface ArchiveDump {
  timelines: Timeline[];
  bases: BaseMeta[];
  /** Per timeline id, every entry in offset order. */
  entries: Map<number, Entry[]>;
}

/** Reads a whole (stopped) store, checking offsets are contiguous inside each timeline. */
export async function dumpArchive(dir: string, source = 'default'): Promise<ArchiveDump> {
  const store = await Store.open(dir, { create: false });
  try {
    const archive = new Archive(store);
    const timelines = await archive.timelines(source);
    const bases = await archive.bases(source);
    const entries = new Map<number, Entry[]>();
    for (const t of timelines) {
      const list: Entry[] = [];
      let next = ((await archive.prunedBefore(source, t.id)) ?? t.baseOffset) + 1;
      for await (const seg of archive.segments(source, t.id)) {
        if (seg.start !== next)
          throw new Error(`timeline ${t.id}: segment starts at ${seg.start}, expected ${next}`);
        const { entries: es } = await archive.readSegment(source, seg);
        list.push(...es);
        next = seg.end + 1;
      }
      if (next - 1 !== t.durableOffset)
        throw new Error(
          `timeline ${t.id}: segments end at ${next - 1}, durable is ${t.durableOffset}`,
        );
      entries.set(t.id, list);
    }
    return { timelines, bases, entries };
  } finally {
    await store.close();
  }
}

/** The data-changing commands of a list of entries, as arrays of strings. */
export function writesOf(entries: readonly Entry[]): string[][] {
  const out: string[][] = [];
  for (const e of entries) {
    const args = parseArgs(e.bytes);
    const name = nameOf(args[0]);
    if (name === 'ping' || name === 'replconf' || name === 'select') continue;
    out.push(args.map((a) => a.toString('utf8')));
  }
  return out;
}
