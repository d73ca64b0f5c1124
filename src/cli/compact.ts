import path from 'node:path';
import { silentLogger } from '../logger.js';
import { type CompactResult, compact, SCRATCH_IDLE_MS } from '../restore/compact.js';
import { Store } from '../store/store.js';
import { describeInstant, isoUtc, machineZone } from '../time.js';
import { formatBytes, out, reportError } from './output.js';

export interface CompactOptions {
  store: string;
  name: string;
  until: string;
  redisServer?: string;
  tz?: string;
  json?: boolean;
}

export async function run(options: CompactOptions): Promise<number> {
  const began = Date.now();
  try {
    const result = await compact({
      open: () => Store.open(options.store, { create: false }),
      name: options.name,
      until: options.until,
      tz: options.tz ?? machineZone(),
      now: Date.now(),
      ...(options.redisServer === undefined ? {} : { redisServer: options.redisServer }),
      idleTimeoutMs: SCRATCH_IDLE_MS,
      log: silentLogger(),
      onResolved: (until) => out.note(describeInstant(until)),
    });
    report(options, result, began);
    return 0;
  } catch (err) {
    return reportError(err, options.json === true);
  }
}

function report(options: CompactOptions, r: CompactResult, began: number): void {
  const { base } = r;
  if (options.json) {
    out.json({
      ok: true,
      source: r.source,
      until: { input: r.until.input, utc: isoUtc(r.until.ms), zone: r.until.zone },
      timeline: r.timeline,
      built: r.built,
      from: r.from,
      replay: r.replay,
      skippedBases: r.skippedBases,
      base: {
        file: base.file,
        offset: base.offset,
        takenAt: isoUtc(base.takenAt),
        bytes: base.bytes,
        sha256: base.sha256,
        via: base.via,
        rolled: base.rolled ?? null,
      },
      seconds: (Date.now() - began) / 1000,
    });
    return;
  }
  const file = path.join(options.store, base.file);
  if (!r.built) {
    out.line(
      `compact: source ${r.source}, timeline ${r.timeline}: the base at offset ${base.offset} (${file}) already stands for this moment; nothing built`,
    );
    return;
  }
  out.line(`compact: source ${r.source}, timeline ${r.timeline}`);
  out.line(
    `  from         the base at offset ${r.from.offset} (${path.join(options.store, r.from.file)})`,
  );
  out.line(`  replayed     ${r.replay.writes} writes (${formatBytes(r.replay.bytes)})`);
  out.line(
    `  rolled base  ${file} (offset ${base.offset}, ${formatBytes(base.bytes)}, digest ${base.rolled?.digest})`,
  );
  for (const s of r.skippedBases)
    out.line(`  skipped      the rolled base at offset ${s.offset} (${s.file}): ${s.reason}`);
  out.line(`  took         ${((Date.now() - began) / 1000).toFixed(1)} s`);
}
