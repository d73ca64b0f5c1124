import path from 'node:path';
import { fileOffloaded, readOffload } from '../store/offload.js';
import type { BaseMeta, Timeline } from '../store/types.js';
import type { SourceCheck } from './context.js';
import { checkStoredFile } from './files.js';

/**
 * Every base of the stream: there for each timeline's start, the bytes its sha256 says (what a
 * restore checks too), and a sound RDB (magic, version, EOF opcode, CRC64) — a base that was bad
 * when it arrived has a matching sha256 and only the RDB check finds it.
 */
export async function checkBases(
  check: SourceCheck,
  timelines: readonly Timeline[],
  bases: readonly BaseMeta[],
  pruned: ReadonlyMap<number, number>,
): Promise<void> {
  const byTimeline = new Map(timelines.map((t) => [t.id, t]));
  for (const t of timelines) {
    const p = pruned.get(t.id);
    if (p !== undefined) {
      // Retention keeps the base a restore at the window's start uses, and segments after it.
      if (!bases.some((b) => b.timeline === t.id && b.offset >= p)) {
        check.report(
          'base-missing',
          `timeline ${t.id} is pruned to offset ${p} but has no base at or after it: nothing in it can be restored`,
          { timeline: t.id, offsets: { from: p, until: p } },
        );
      }
    } else if (!bases.some((b) => b.timeline === t.id && b.offset === t.baseOffset)) {
      check.report(
        'base-missing',
        `timeline ${t.id} has no base at its start (offset ${t.baseOffset}): nothing in it can be restored before a later base`,
        { timeline: t.id, offsets: { from: t.baseOffset, until: t.baseOffset } },
        { from: t.startedAt, until: t.startedAt },
      );
    }
  }
  // What --local-retain left in the bucket alone: `rf verify --repo` checks it there.
  const offloaded = await readOffload(check.kv, check.source);
  for (const b of bases) {
    if (fileOffloaded(offloaded, b.file)) {
      check.counters.bases++;
      continue;
    }
    const where = {
      timeline: b.timeline,
      offsets: { from: b.offset, until: b.offset },
      file: b.file,
    };
    const time = { from: b.takenAt, until: b.takenAt };
    const t = byTimeline.get(b.timeline);
    if (t !== undefined && b.offset < t.baseOffset) {
      check.report(
        'base-missing',
        `the base at offset ${b.offset} lies before its timeline's start (${t.baseOffset})`,
        where,
        time,
      );
    }
    check.counters.bases++;
    const result = await checkStoredFile(path.join(check.kv.dir, b.file), {
      rdb: true,
      onBytes: (n) => {
        check.progress.done += n;
        check.counters.baseBytes += n;
      },
    });
    // Keep the progress total honest when the file is shorter than recorded.
    check.progress.done += Math.max(0, b.bytes - result.bytes);
    if (result.kind !== 'ok') {
      check.report(
        'base-missing',
        result.kind === 'missing'
          ? `the base file ${b.file} is missing`
          : `the base file ${b.file} cannot be read (${result.errno ?? 'error'})`,
        where,
        time,
      );
      continue;
    }
    const rdbNote = result.rdbError === null ? '' : `; the RDB check says: ${result.rdbError}`;
    if (result.bytes < b.bytes) {
      check.report(
        'base-truncated',
        `the base file holds ${result.bytes} of its ${b.bytes} bytes${rdbNote}`,
        { ...where, bytes: { from: result.bytes, until: b.bytes } },
        time,
      );
    } else if (result.bytes !== b.bytes || result.sha256 !== b.sha256) {
      // A restore passes over a damaged rolled base (prepare.ts); rf compact can build it again.
      const what =
        b.via === 'rolled'
          ? `the rolled base file (built by rf from offset ${b.rolled?.fromOffset}; restores use the base before it, and rf compact can build it again)`
          : 'the base file';
      check.report(
        'base-checksum',
        `${what} does not match its checksum (${result.bytes} bytes, sha256 ${result.sha256.slice(0, 16)}…, recorded ${b.bytes} bytes, ${b.sha256.slice(0, 16)}…)${rdbNote}`,
        where,
        time,
      );
    } else if (result.rdbError !== null) {
      check.report(
        'base-rdb',
        `the base file matches its checksum but is not a sound RDB: ${result.rdbError}`,
        where,
        time,
      );
    }
  }
}
