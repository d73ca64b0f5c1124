import path from 'node:path';
import { isRfError } from '../errors.js';
import { FrameScanner } from '../resp/frames.js';
import {
  AofArchive,
  type AofBaseMeta,
  type AofChunkMeta,
  type AofFileRecord,
  type AofGap,
  aofKeys,
} from '../store/chunks.js';
import { Peekable, type SourceCheck } from './context.js';
import { checkStoredFile } from './files.js';
import type { Location } from './problems.js';

/**
 * The AOF half of `rf verify`: every chunk against its sha256 and its meta (length, whole
 * commands, command count, `#TS` bounds), the chunks of each file contiguous from where capture
 * began to where the file record says it ends, and every AOF base against its checksum and as an
 * RDB or AOF. What it finds whole becomes the runs the cross-check compares with the stream.
 */

/** A stretch of one file whose chunks are all there and sound: [from, until). */
export interface AofPiece {
  record: AofFileRecord;
  from: number;
  until: number;
}

/**
 * Pieces that hold one continuous history of writes: the incr files of Redis 7 follow each
 * other without a byte lost or repeated, so they chain; a recorded gap, a missing or damaged
 * chunk, or a Redis 6 file (whose rewrite repeats the old file's tail) starts a new run.
 */
export interface AofRun {
  pieces: AofPiece[];
  /** Earliest and latest time its writes can have (from `#TS` and chunk capture times). */
  firstChunkAt: number;
  firstTs: number | null;
  lastChunkAt: number;
  /** The last `#TS` seen: the run's last write happened no earlier than this second. */
  lastTs: number | null;
}

export interface AofCheckResult {
  files: AofFileRecord[];
  gaps: AofGap[];
  runs: AofRun[];
}

const tsTime = (meta: AofChunkMeta) => ({
  from: meta.firstTs === null ? meta.capturedAt : meta.firstTs * 1000,
  until: meta.capturedAt,
});

export async function checkAof(check: SourceCheck): Promise<AofCheckResult> {
  const { source: src } = check;
  const archive = new AofArchive(check.kv);
  const files = (await check.records<AofFileRecord>(aofKeys.filePrefix(src))).sort(
    (a, b) => a.fileNo - b.fileNo,
  );
  const gaps = await check.records<AofGap>(aofKeys.gapPrefix(src));
  const bases = await check.records<AofBaseMeta>(aofKeys.basePrefix(src));
  check.counters.aofFiles += files.length;

  const runs: AofRun[] = [];
  let run: AofRun | null = null;
  let previous: AofFileRecord | null = null;
  for (const f of files) {
    check.progress.phase = `${src}: AOF ${f.name}`;
    const pieces = await checkFile(check, archive, f);
    const chains =
      run !== null &&
      previous !== null &&
      previous.kind === 'incr' &&
      f.kind === 'incr' &&
      f.chunkStart === 0 &&
      previous.ended !== null &&
      previous.capturedEnd === previous.ended.size &&
      // A gap of either file, or of a file missed between them (filed under its own number).
      !gaps.some((g) => g.fileNo >= previous!.fileNo && g.fileNo <= f.fileNo);
    for (const [i, p] of pieces.entries()) {
      // Within a file, pieces are separated by damage: only a file's first piece can continue.
      const continues =
        run !== null &&
        i === 0 &&
        chains &&
        p.piece.from === f.chunkStart &&
        lastPieceComplete(run);
      if (!continues) {
        run = {
          pieces: [],
          firstChunkAt: p.firstChunkAt,
          firstTs: p.firstTs,
          lastChunkAt: 0,
          lastTs: null,
        };
        runs.push(run);
      }
      run!.pieces.push(p.piece);
      run!.lastChunkAt = Math.max(run!.lastChunkAt, p.lastChunkAt);
      run!.lastTs = p.lastTs ?? run!.lastTs;
    }
    if (pieces.length === 0 || pieces[pieces.length - 1]!.piece.until !== f.capturedEnd) run = null;
    previous = f;
  }

  for (const b of bases) await checkAofBase(check, archive, b);
  return { files, gaps, runs };
}

/** Whether the run's last piece reaches the end of its file, so the next file can follow it. */
function lastPieceComplete(run: AofRun): boolean {
  const last = run.pieces[run.pieces.length - 1];
  return last !== undefined && last.until === last.record.capturedEnd;
}

interface PieceInfo {
  piece: AofPiece;
  firstChunkAt: number;
  firstTs: number | null;
  lastChunkAt: number;
  lastTs: number | null;
}

/** Checks one file's chunks in byte order; returns its sound stretches. */
async function checkFile(
  check: SourceCheck,
  archive: AofArchive,
  f: AofFileRecord,
): Promise<PieceInfo[]> {
  const { source: src } = check;
  const pieces: PieceInfo[] = [];
  let current: PieceInfo | null = null;
  const close = () => {
    if (current !== null) pieces.push(current);
    current = null;
  };
  const where = (from: number, until: number): Location => ({
    file: f.name,
    fileNo: f.fileNo,
    bytes: { from, until },
  });
  let expected = f.chunkStart;
  let count = 0;
  let broken = false;
  let lastMeta: AofChunkMeta | null = null;
  const prefix = aofKeys.chunkPrefix(src, f.fileNo);
  // Up to where the file record (read first) says the store holds it: chunks rf listen adds
  // while verify runs are for the next run.
  const metas = new Peekable(
    check.recordStream<AofChunkMeta>({
      gte: prefix,
      lt: f.capturedEnd > f.chunkStart ? aofKeys.chunk(src, f.fileNo, f.capturedEnd) : prefix,
    }),
  );
  try {
    for (let rec = await metas.take(); rec !== undefined; rec = await metas.take()) {
      const meta = rec.value;
      if (meta === undefined) {
        close();
        continue;
      }
      count++;
      check.counters.chunks++;
      if (meta.start > expected) {
        check.report(
          'chunk-missing',
          `bytes ${expected}..${meta.start} of ${f.name} are in no chunk (${meta.start - expected} bytes of the AOF lost)`,
          where(expected, meta.start),
          { from: lastMeta?.capturedAt ?? f.firstSeenAt, until: meta.capturedAt },
        );
        broken = true;
        close();
      } else if (meta.start < expected) {
        check.report(
          'chunk-overlap',
          `the chunk at byte ${meta.start} overlaps the one before it, which ends at ${expected}`,
          where(meta.start, meta.end),
          tsTime(meta),
        );
        broken = true;
        close();
      }
      expected = Math.max(expected, meta.end);
      lastMeta = meta;
      const sound = await checkChunkData(check, archive, f, meta);
      if (!sound) {
        close();
        continue;
      }
      if (current === null) {
        current = {
          piece: { record: f, from: meta.start, until: meta.end },
          firstChunkAt: meta.capturedAt,
          firstTs: meta.firstTs,
          lastChunkAt: meta.capturedAt,
          lastTs: meta.lastTs,
        };
      } else {
        const c = current as PieceInfo;
        c.piece.until = meta.end;
        c.lastChunkAt = meta.capturedAt;
        c.lastTs = meta.lastTs ?? c.lastTs;
      }
    }
  } finally {
    await metas.close();
  }
  close();
  if (expected < f.capturedEnd) {
    broken = true;
    check.report(
      'chunk-missing',
      `bytes ${expected}..${f.capturedEnd} of ${f.name} are in no chunk: the file record says they were stored`,
      where(expected, f.capturedEnd),
      lastMeta === null ? null : { from: lastMeta.capturedAt, until: lastMeta.capturedAt },
    );
  }
  // The count says something new only when the chunks themselves join up.
  if (!broken && count !== f.chunks) {
    check.report(
      'aof-file-record',
      `the file record counts ${f.chunks} chunks; the store holds ${count}`,
      { file: f.name, fileNo: f.fileNo },
    );
  }
  if (f.ended !== null && f.ended.size !== f.capturedEnd) {
    check.report(
      'aof-file-record',
      `the file record says ${f.name} ended at ${f.ended.size} bytes but holds it up to ${f.capturedEnd}`,
      where(f.capturedEnd, f.ended.size),
    );
  }
  return pieces;
}

/** The chunk's bytes: checksum, whole RESP frames, and the counts its meta states. */
async function checkChunkData(
  check: SourceCheck,
  archive: AofArchive,
  f: AofFileRecord,
  meta: AofChunkMeta,
): Promise<boolean> {
  const where: Location = {
    file: f.name,
    fileNo: f.fileNo,
    bytes: { from: meta.start, until: meta.end },
  };
  const time = tsTime(meta);
  let data: Buffer;
  try {
    data = await archive.readChunk(check.source, meta);
  } catch (err) {
    // rf listen --local-retain removed it once the bucket held it: no damage, nothing to read.
    if (isRfError(err, 'RF_REPO_ONLY')) return false;
    if (isRfError(err, 'RF_CHECKSUM')) {
      check.report('chunk-checksum', `the chunk does not match its sha256`, where, time);
      return false;
    }
    if (isRfError(err, 'RF_CORRUPT')) {
      check.report(
        'chunk-corrupt',
        `the chunk's data is missing or has the wrong length`,
        where,
        time,
      );
      return false;
    }
    throw err;
  }
  check.counters.chunkBytes += data.length;
  check.progress.done += data.length;
  const scanner = new FrameScanner({ startAt: meta.start, annotations: true });
  let commands = 0;
  let firstTs: number | null = null;
  let lastTs: number | null = null;
  try {
    scanner.scan(data, (frame) => {
      if (frame.text === null) {
        commands++;
        return;
      }
      const m = /^TS:(\d+)$/.exec(frame.text);
      if (m) {
        firstTs ??= Number(m[1]);
        lastTs = Number(m[1]);
      }
    });
  } catch (err) {
    if (!isRfError(err, 'RF_PROTOCOL')) throw err;
    check.report(
      'chunk-corrupt',
      `the chunk holds bytes that are not Redis commands: ${err.message}`,
      where,
      time,
    );
    return false;
  }
  const wrong: string[] = [];
  if (scanner.pendingBytes > 0)
    wrong.push(`it ends inside a command (${scanner.pendingBytes} bytes)`);
  if (commands !== meta.commands)
    wrong.push(`${commands} commands, the meta says ${meta.commands}`);
  if (firstTs !== meta.firstTs || lastTs !== meta.lastTs)
    wrong.push(`#TS ${firstTs}..${lastTs}, the meta says ${meta.firstTs}..${meta.lastTs}`);
  if (wrong.length > 0) {
    check.report(
      'chunk-corrupt',
      `the chunk disagrees with its meta: ${wrong.join('; ')}`,
      where,
      time,
    );
    return false;
  }
  return true;
}

/** A copied base: there, the bytes its sha256 says, and readable as what it claims to be. */
async function checkAofBase(
  check: SourceCheck,
  archive: AofArchive,
  b: AofBaseMeta,
): Promise<void> {
  check.counters.aofBases++;
  const file = archive.basePath(b);
  if (file === null) return;
  const where: Location = { file: b.file ?? b.name, fileNo: b.fileNo };
  const time = { from: b.copiedAt, until: b.copiedAt };
  const rdb = b.format === 'rdb' || b.format === 'rdb-preamble';
  const scanner = b.format === 'aof' ? new FrameScanner({ annotations: true }) : null;
  let aofError: string | null = null;
  const result = await checkStoredFile(file, {
    rdb,
    onBytes: (n) => {
      check.counters.aofBaseBytes += n;
    },
    ...(scanner === null
      ? {}
      : {
          onData: (piece: Buffer) => {
            if (aofError !== null) return;
            try {
              scanner.scan(piece, () => undefined);
            } catch (err) {
              aofError = (err as Error).message;
            }
          },
        }),
  });
  if (result.kind !== 'ok') {
    check.report(
      'aof-base-missing',
      `the AOF base ${path.basename(file)} (${b.name}) is ${result.kind === 'missing' ? 'missing' : `unreadable (${result.errno ?? 'error'})`}`,
      where,
      time,
    );
    return;
  }
  if (result.bytes !== b.bytes || result.sha256 !== b.sha256) {
    check.report(
      'aof-base-checksum',
      `the AOF base ${b.name} does not match its checksum (${result.bytes} of ${b.bytes} bytes)${result.rdbError === null ? '' : `; the RDB check says: ${result.rdbError}`}`,
      where,
      time,
    );
    return;
  }
  if (scanner !== null && aofError === null && scanner.pendingBytes > 0)
    aofError = `it ends inside a command (${scanner.pendingBytes} bytes)`;
  const why = result.rdbError ?? aofError;
  if (why !== null) {
    check.report(
      'aof-base-corrupt',
      `the AOF base ${b.name} matches its checksum but is not sound: ${why}`,
      where,
      time,
    );
  }
}
