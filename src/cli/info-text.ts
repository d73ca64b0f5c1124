/** `rf info` as text for a person: fits 80 columns. The `--json` shape is in info.ts. */
import type { Activity } from '../log/activity.js';
import { describeServer } from '../replication/server-info.js';
import { formatInZone, isoUtc, machineZone } from '../time.js';
import type { DaemonStatus, InfoOptions, SourceInfo } from './info.js';
import { forkLines } from './info-forks.js';
import { formatBytes, out } from './output.js';

const BLOCKS = '▁▂▃▄▅▆▇█';

/** One character per bin: blank outside the restorable range, `·` for none, then eight heights. */
export function sparkline(a: Activity): string {
  const max = Math.max(0, ...a.values);
  return a.values
    .map((v, i) => {
      if (!a.covered[i]) return ' ';
      if (v <= 0) return '·';
      return BLOCKS[Math.min(7, Math.ceil((v / max) * 8) - 1)];
    })
    .join('');
}

function binLabel(ms: number): string {
  const units: [number, string][] = [
    [86_400_000, 'day'],
    [3_600_000, 'hour'],
    [60_000, 'minute'],
    [1000, 'second'],
  ];
  for (const [size, unit] of units) {
    if (ms % size === 0) {
      const n = ms / size;
      return n === 1 ? unit : `${n} ${unit}s`;
    }
  }
  return `${ms} ms`;
}

function ago(ms: number): string {
  const s = Math.max(0, ms) / 1000;
  if (s < 60) return `${s.toFixed(1)} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86_400) return `${(s / 3600).toFixed(1)} h ago`;
  return `${(s / 86_400).toFixed(1)} days ago`;
}

export function duration(ms: number): string {
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  if (s < 3600) return `${(s / 60).toFixed(1)} min`;
  if (s < 86_400) return `${(s / 3600).toFixed(1)} h`;
  return `${(s / 86_400).toFixed(1)} days`;
}

function printImprecise(info: SourceInfo): void {
  const { imprecise } = info.ix;
  if (imprecise.length === 0) return;
  out.line('  imprecise (writes received late: each ran within these bounds)');
  for (const [i, w] of imprecise.entries()) {
    out.line(`    ${isoUtc(w.from)} .. ${isoUtc(w.until)}  ${duration(w.until - w.from)}`);
    out.line(
      `        ${w.writes} writes, offsets ${w.firstOffset}..${w.lastOffset}, timeline ${w.timeline}`,
    );
    out.line(
      info.coverage.imprecise[i] === 'second'
        ? '        the AOF record places them to the second: --from auto uses it'
        : '        a restore inside is refused (unless --accept-imprecise)',
    );
  }
}

function short(replid: string): string {
  return replid.length > 12 ? `${replid.slice(0, 12)}…` : replid;
}

export function printText(
  options: InfoOptions,
  infos: SourceInfo[],
  daemon: DaemonStatus | null,
  onDisk: number,
): void {
  const zone = options.tz ?? machineZone();
  const now = Date.now();
  out.line(`store ${options.store}`);
  out.line(
    `  rf listen   ${daemon === null ? 'not running' : `running, pid ${daemon.pid}, source ${daemon.name}`}`,
  );
  out.line(`  on disk     ${formatBytes(onDisk)}`);
  if (infos.length === 0) out.line('  no source archived yet');
  for (const info of infos) {
    const { ix } = info;
    out.line();
    out.line(`source ${ix.source.name}  ${ix.source.url}`);
    if (ix.source.server !== undefined)
      out.line(
        `  server      ${describeServer(ix.source.server)} (seen ${isoUtc(ix.source.server.seenAt)})`,
      );
    if (ix.restorable.length === 0) out.line('  restorable  nothing yet (no base)');
    const utc = zone === 'UTC' || zone === 'Etc/UTC';
    for (const r of ix.restorable) {
      out.line(`  restorable  ${isoUtc(r.from)} .. ${isoUtc(r.until)}`);
      if (!utc)
        out.line(`              ${formatInZone(r.from, zone)} .. ${formatInZone(r.until, zone)}`);
    }
    if (ix.restorable.length > 0 && !utc) out.line(`              (the same in ${zone})`);
    if (info.lastWrite !== null) {
      out.line(`  last write  ${isoUtc(info.lastWrite)} (${ago(now - info.lastWrite)})`);
    }
    printCapture(info, now);
    printActivity(info);
    out.line('  timelines');
    for (const t of ix.timelines) {
      out.line(`    #${t.id}  ${isoUtc(t.startedAt)} .. ${isoUtc(t.lastTime)}  ${t.reason}`);
      // A timeline whose base is all it holds yet has no offsets to show (not "29..28").
      out.line(
        `        replid ${short(t.replid)}  ${t.durableOffset > t.baseOffset ? `offsets ${t.baseOffset + 1}..${t.durableOffset}` : `base at offset ${t.baseOffset}, no writes yet`}`,
      );
      out.line(`        ${t.segments} segments, ${formatBytes(t.bytes)}`);
    }
    for (const line of forkLines(ix.timelines, '  ')) out.line(line);
    if (ix.gaps.length > 0) {
      out.line('  gaps (nothing was captured; restores refuse these times)');
      for (const [i, g] of ix.gaps.entries()) {
        out.line(`    ${isoUtc(g.from)} .. ${isoUtc(g.until)}  ${duration(g.until - g.from)}`);
        out.line(`        ${g.reason}, between timelines ${g.before} and ${g.after}`);
        if (info.coverage.gaps[i] === true)
          out.line('        the AOF record covers it: --from auto restores it to the second');
      }
    }
    printImprecise(info);
    const baseBytes = ix.bases.reduce((n, b) => n + b.bytes, 0);
    const latestBase = ix.bases.reduce((m, b) => Math.max(m, b.takenAt), 0);
    out.line(
      `  bases       ${ix.bases.length} (${formatBytes(baseBytes)})${ix.bases.length > 0 ? `, latest ${isoUtc(latestBase)}` : ''}`,
    );
    if (info.retention !== null) {
      out.line(
        `  retention   ${duration(info.retention.retainMs)}: restores from ${info.retention.windowStart} on`,
      );
    }
    printAof(info);
  }
}

function printCapture(info: SourceInfo, now: number): void {
  const lag = info.lag;
  if (lag === null) {
    out.line('  capture     rf listen is not capturing this source');
    return;
  }
  const parts = [lag.phase];
  if (lag.behindBytes !== null) parts.push(`${formatBytes(lag.behindBytes)} behind the master`);
  if (lag.pendingBytes !== null && lag.pendingBytes > 0)
    parts.push(`${formatBytes(lag.pendingBytes)} not yet durable`);
  out.line(`  capture     ${parts.join(', ')}`);
  if (lag.lastReceiveAt !== null)
    out.line(`              last byte received ${ago(now - lag.lastReceiveAt)}`);
  if (lag.aofLagBytes !== null)
    out.line(`              AOF capture ${formatBytes(lag.aofLagBytes)} behind the AOF on disk`);
  const counts = Object.entries(lag.errors).map(([code, n]) => `${code} ×${n}`);
  if (counts.length > 0) {
    for (const [i, line] of wrapWords(`${counts.join(', ')} since rf listen started`).entries())
      out.line(`  ${i === 0 ? 'errors    ' : '          '}  ${line}`);
  }
  const last = lag.lastError;
  if (last !== null) {
    out.line(`              last: ${last.job}, ${last.code}, ${ago(now - last.at)}`);
    for (const line of wrapWords(last.message)) out.line(`                ${line}`);
  }
}

/** Words into lines that fit the 80 columns after the 16-column indent of the capture rows. */
function wrapWords(text: string, width = 64): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/)) {
    const piece = word.length > width ? `${word.slice(0, width - 1)}…` : word;
    if (line !== '' && line.length + 1 + piece.length > width) {
      lines.push(line);
      line = piece;
    } else line = line === '' ? piece : `${line} ${piece}`;
  }
  if (line !== '') lines.push(line);
  return lines;
}

function printActivity(info: SourceInfo): void {
  const a = info.activity;
  if (a === null) return;
  const max = Math.max(0, ...a.values);
  out.line(
    `  activity    ${a.unit} per ${binLabel(a.binMs)}, peak ${a.unit === 'bytes' ? formatBytes(max) : max}`,
  );
  out.line(`              ${sparkline(a)}`);
  // As precise as a bin: seconds for second bins, minutes up to hours, the date for days.
  const digits = a.binMs < 60_000 ? 19 : a.binMs < 86_400_000 ? 16 : 10;
  const label = (ms: number) => `${isoUtc(ms).slice(0, digits)}${digits > 10 ? 'Z' : ''}`;
  const start = label(a.from);
  const end = label(a.from + a.values.length * a.binMs);
  const gap = a.values.length - start.length - end.length;
  out.line(`              ${gap > 0 ? `${start}${' '.repeat(gap)}${end}` : `${start} .. ${end}`}`);
}

function printAof(info: SourceInfo): void {
  const a = info.aof;
  if (a.chunks === 0 && a.bases === 0 && a.files === 0) {
    out.line('  aof         no AOF capture');
    return;
  }
  out.line(
    `  aof         ${a.chunks} chunks (${formatBytes(a.bytes)}) in ${a.files} files, ${a.bases} bases (${formatBytes(info.aofBaseBytes)})`,
  );
  if (a.lastChunkAt !== null) out.line(`              last chunk ${a.lastChunkAt}`);
  if (a.sizeBytes !== null)
    out.line(`              AOF on the host ${formatBytes(a.sizeBytes)} at ${a.sizeAt}`);
  for (const g of a.gaps) {
    out.line(`              gap in ${g.file} bytes ${g.start}..${g.end ?? '?'}: ${g.reason}`);
  }
}
