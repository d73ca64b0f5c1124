import { RemoteKv } from '../daemon/control-client.js';
import { openReader } from '../daemon/open-reader.js';
import { RfError } from '../errors.js';
import { Archive } from '../store/archive.js';
import { indexSource, type SourceIndex } from '../store/summary.js';
import { out, reportError } from './output.js';

export interface InfoOptions {
  store: string;
  name?: string;
  tz?: string;
  json?: boolean;
}

const iso = (ms: number) => new Date(ms).toISOString();

/** The stable `--json` shape (DESIGN.md): add fields, never rename or remove them. */
export function sourceJson(ix: SourceIndex, daemon: unknown) {
  return {
    name: ix.source.name,
    url: ix.source.url,
    timelines: ix.timelines.map((t) => ({
      id: t.id,
      replid: t.replid,
      replids: t.replids,
      from: iso(t.startedAt),
      until: iso(t.lastTime),
      baseOffset: t.baseOffset,
      durableOffset: t.durableOffset,
      reason: t.reason,
      segments: t.segments,
      bytes: t.bytes,
    })),
    gaps: ix.gaps.map((g) => ({
      from: iso(g.from),
      until: iso(g.until),
      reason: g.reason,
      before: g.before,
      after: g.after,
    })),
    restorable: ix.restorable.map((r) => ({ from: iso(r.from), until: iso(r.until) })),
    bases: ix.bases.map((b) => ({
      timeline: b.timeline,
      offset: b.offset,
      takenAt: iso(b.takenAt),
      bytes: b.bytes,
      file: b.file,
      via: b.via,
    })),
    lastWrite:
      ix.timelines.length > 0 ? iso(Math.max(...ix.timelines.map((t) => t.lastTime))) : null,
    aof: { chunks: 0, bytes: 0, lastChunkAt: null },
    daemon,
  };
}

export async function run(options: InfoOptions): Promise<number> {
  try {
    const kv = await openReader(options.store);
    try {
      const archive = new Archive(kv);
      const daemon = kv instanceof RemoteKv ? await kv.status() : null;
      let sources = await archive.sources();
      if (options.name !== undefined) {
        sources = sources.filter((s) => s.name === options.name);
        if (sources.length === 0) {
          throw new RfError(
            'RF_UNKNOWN_SOURCE',
            `the store ${options.store} holds no source named ${options.name}`,
            {
              details: { store: options.store, name: options.name },
              hint: 'run `rf info` without --name to list the sources',
            },
          );
        }
      }
      const indexes = await Promise.all(sources.map((s) => indexSource(archive, s)));
      if (options.json) {
        out.json({ store: options.store, sources: indexes.map((ix) => sourceJson(ix, daemon)) });
      } else {
        printText(options.store, indexes, daemon);
      }
      return 0;
    } finally {
      await kv.close();
    }
  } catch (err) {
    return reportError(err, options.json === true);
  }
}

function printText(store: string, indexes: SourceIndex[], daemon: unknown): void {
  out.line(
    `store ${store}${daemon ? `  (rf listen running, pid ${(daemon as { pid: number }).pid})` : ''}`,
  );
  if (indexes.length === 0) out.line('  no source archived yet');
  for (const ix of indexes) {
    out.line();
    out.line(`source ${ix.source.name}  ${ix.source.url}`);
    if (ix.restorable.length === 0) out.line('  restorable  nothing yet (no base)');
    for (const r of ix.restorable) out.line(`  restorable  ${iso(r.from)} .. ${iso(r.until)}`);
    out.line('  timelines');
    for (const t of ix.timelines) {
      out.line(`    #${t.id}  ${iso(t.startedAt)} .. ${iso(t.lastTime)}  ${t.reason}`);
      out.line(
        `        replid ${t.replid}  offsets ${t.baseOffset + 1}..${t.durableOffset}  ${t.segments} segments, ${formatBytes(t.bytes)}`,
      );
    }
    if (ix.gaps.length > 0) {
      out.line('  gaps');
      for (const g of ix.gaps) {
        out.line(
          `    ${iso(g.from)} .. ${iso(g.until)}  ${((g.until - g.from) / 1000).toFixed(1)} s  ${g.reason}`,
        );
      }
    }
    const baseBytes = ix.bases.reduce((n, b) => n + b.bytes, 0);
    out.line(`  bases       ${ix.bases.length} (${formatBytes(baseBytes)})`);
  }
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${u === 0 ? v : v.toFixed(1)} ${units[u]}`;
}
