import type { ImpreciseWindow } from '../bounds/windows.js';
import type { KvReader } from '../store/store.js';
import type { Gap } from '../store/summary.js';
import { planAofRestore } from './aof-source.js';

/**
 * Where the stream cannot place a time (a gap, an imprecise window), whether the AOF record
 * can: it plans a restore at both ends of the span to the second, as `--from auto` then does.
 * A stall or a reconnect of rf leaves the master's own AOF untouched.
 */
export async function aofPlaces(
  kv: KvReader,
  source: string,
  from: number,
  until: number,
): Promise<boolean> {
  for (const t of [from + 1, Math.max(from + 1, until - 1)]) {
    const plan = await planAofRestore(kv, source, t).catch(() => null);
    if (plan === null || plan.precision !== 'second') return false;
  }
  return true;
}

export interface Coverage {
  /** Per gap, in the index's order: the AOF record restores its times to the second. */
  gaps: boolean[];
  /** Per imprecise window: 'second' when the AOF places its writes, else only 'bounds'. */
  imprecise: ('second' | 'bounds')[];
}

export async function aofCoverage(
  kv: KvReader,
  source: string,
  gaps: readonly Gap[],
  windows: readonly ImpreciseWindow[],
  hasAof: boolean,
): Promise<Coverage> {
  if (!hasAof) return { gaps: gaps.map(() => false), imprecise: windows.map(() => 'bounds') };
  const g: boolean[] = [];
  for (const gap of gaps) g.push(await aofPlaces(kv, source, gap.from, gap.until));
  const w: ('second' | 'bounds')[] = [];
  for (const win of windows)
    w.push((await aofPlaces(kv, source, win.from, win.until)) ? 'second' : 'bounds');
  return { gaps: g, imprecise: w };
}
