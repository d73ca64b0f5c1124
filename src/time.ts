// Over 400 lines: the whole `<time>` and `<duration>` grammar of DESIGN.md and the one way to
// print an instant, kept together so every form is parsed and echoed by the same rules.
/**
 * `<time>` and `<duration>` arguments of the command line (DESIGN.md, "Command line"), and the
 * one way rf prints an instant. Pure functions: "now", the zone and the archive's latest write
 * come in through `ctx`, so every rule here is testable with a fixed clock.
 *
 * Decisions an operator can rely on:
 * - An instant is a whole number of milliseconds since the Unix epoch, because that is the
 *   resolution rf stamps writes with. Sub-millisecond digits are truncated (floored), which for
 *   the inclusive `--until` selects exactly the same writes as the full-precision value; the
 *   result carries a `note` saying so. More than 9 fraction digits is rejected as a typo.
 * - A wall time without an offset is read in `ctx.tz` (default: the machine's zone). One that
 *   does not exist there (spring-forward gap) or that happened twice (autumn overlap) is
 *   rejected with RF_BAD_TIME, showing the candidate instants with their offsets, rather than
 *   guessed: a restore a silent hour away from what was meant is the worst outcome.
 * - `d` is exactly 24 hours and `w` 7 days, not calendar days: `-1d` across a DST change is
 *   still 86 400 000 ms before now.
 */
import { IANAZone } from 'luxon';
import { RfError } from './errors.js';

export type TimeForm = 'iso-zoned' | 'iso-local' | 'epoch' | 'relative' | 'latest';

export interface ResolvedTime {
  /** Milliseconds since the Unix epoch. */
  ms: number;
  /** What the operator typed. */
  input: string;
  /** The IANA zone the instant is echoed in (`ctx.tz` or the machine's zone). */
  zone: string;
  form: TimeForm;
  /** Set when the input was adjusted, e.g. sub-millisecond digits truncated. */
  note?: string;
}

export interface TimeContext {
  /** The current time in ms; relative times count back from it. */
  now: number;
  /** IANA zone for wall times without an offset, and for the echo. Default: the machine's. */
  tz?: string;
  /** The last write the archive holds, in ms; what `latest` means. */
  latest?: number;
}

export interface ClockTime {
  hour: number;
  minute: number;
}

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
/** The range a JavaScript Date can hold (ECMA-262, "Time Values and Time Range"). */
const MAX_MS = 8.64e15;

const ACCEPTED_TIMES = [
  'accepted forms:',
  '2026-11-24T15:12:01.250+01:00 (ISO 8601 with Z or an offset),',
  '2026-11-24 15:12:01 or 2026-11-24 (ISO without offset, read in --tz or the machine zone),',
  '@1764000000.250 (Unix seconds),',
  '-15m (before now; units ms s m h d w, compound -1h30m),',
  'latest (the last write archived)',
].join(' ');

const ACCEPTED_DURATIONS =
  'a number with a unit (ms, s, m, h, d, w), units compounded largest first: 250ms, 90s, 15m, 24h, 7d, 1h30m';

// ---------------------------------------------------------------------------------------------
// Zones

/** The zone the machine runs in, as Intl sees it (it honours TZ). */
export function machineZone(): string {
  return new Intl.DateTimeFormat().resolvedOptions().timeZone ?? 'UTC';
}

/**
 * The canonical IANA name for `tz` ('europe/paris' → 'Europe/Paris'), or RF_BAD_TIME naming it.
 * Fixed offsets such as '+01:00' are not zones: Node 20's Intl rejects them, and an offset
 * belongs on the time itself.
 */
export function canonicalZone(tz: string): string {
  const known = canonicalNames.get(tz);
  if (known !== undefined) return known;
  if (!IANAZone.isValidZone(tz)) {
    throw new RfError('RF_BAD_TIME', `unknown time zone ${JSON.stringify(tz)}`, {
      details: { zone: tz },
      hint: 'use an IANA zone name such as Europe/Paris, America/New_York or UTC (see `timedatectl list-timezones`), or put the offset on the time itself: 2026-11-24T15:12:01+01:00',
    });
  }
  const name = new Intl.DateTimeFormat('en-US', { timeZone: tz }).resolvedOptions().timeZone;
  canonicalNames.set(tz, name);
  return name;
}

/** Building an Intl formatter costs far more than a lookup; zone names are few. */
const canonicalNames = new Map<string, string>();

/** The zone's UTC offset at instant `ms`, in ms (east of Greenwich is positive). */
function offsetAt(zone: string, ms: number): number {
  return Math.round(IANAZone.create(zone).offset(ms) * MINUTE);
}

/**
 * What a wall-clock reading (given as if it were UTC) maps to in `zone`: one instant, none
 * (clocks jumped over it) or two (clocks went back over it). Offsets are sampled a day either
 * side, which holds for every zone that changes offset at most once in 48 hours.
 */
type WallMapping =
  | { kind: 'unique'; ms: number; offset: number }
  | { kind: 'gap'; transition: number; offsetBefore: number; offsetAfter: number }
  | {
      kind: 'overlap';
      earlier: { ms: number; offset: number };
      later: { ms: number; offset: number };
    };

function mapWallTime(wall: number, zone: string): WallMapping {
  const offsetBefore = offsetAt(zone, wall - DAY);
  const offsetAfter = offsetAt(zone, wall + DAY);
  const valid: { ms: number; offset: number }[] = [];
  for (const offset of new Set([offsetBefore, offsetAfter])) {
    const ms = wall - offset;
    if (offsetAt(zone, ms) === offset) valid.push({ ms, offset });
  }
  valid.sort((a, b) => a.ms - b.ms);
  const [first, second] = valid;
  if (first === undefined) {
    return { kind: 'gap', transition: findTransition(zone, wall), offsetBefore, offsetAfter };
  }
  if (second === undefined) return { kind: 'unique', ...first };
  return { kind: 'overlap', earlier: first, later: second };
}

/** The first ms at which the zone's offset differs from the one a day before `wall`. */
function findTransition(zone: string, wall: number): number {
  let lo = wall - DAY;
  let hi = wall + DAY;
  const before = offsetAt(zone, lo);
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (offsetAt(zone, mid) === before) lo = mid;
    else hi = mid;
  }
  return hi;
}

// ---------------------------------------------------------------------------------------------
// Formatting

function pad(n: number, width = 2): string {
  return String(n).padStart(width, '0');
}

function formatOffset(offsetMs: number): string {
  const sign = offsetMs < 0 ? '-' : '+';
  const minutes = Math.floor(Math.abs(offsetMs) / MINUTE);
  return `${sign}${pad(Math.floor(minutes / 60))}:${pad(minutes % 60)}`;
}

/** Wall-clock fields of a UTC-based ms value, without zone designator. */
function formatWall(wall: number): string {
  const d = new Date(wall);
  return (
    `${pad(d.getUTCFullYear(), 4)}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}` +
    `T${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}` +
    `.${pad(d.getUTCMilliseconds(), 3)}`
  );
}

function assertInstant(ms: number): void {
  if (!Number.isInteger(ms) || Math.abs(ms) > MAX_MS) {
    throw new TypeError(`not an instant in whole milliseconds: ${ms}`);
  }
}

/** `2026-11-24T14:12:01.250Z`: UTC, always with milliseconds (the form `rf info --json` uses). */
export function isoUtc(ms: number): string {
  assertInstant(ms);
  return `${formatWall(ms)}Z`;
}

/** `2026-11-24T15:12:01.250+01:00`: the wall time in `tz` with the offset in force there. */
export function formatInZone(ms: number, tz: string): string {
  assertInstant(ms);
  const offset = offsetAt(canonicalZone(tz), ms);
  return `${formatWall(ms + offset)}${formatOffset(offset)}`;
}

/**
 * The line every command prints before it acts, e.g.
 * `until 2026-11-24T14:12:01.250Z (2026-11-24T15:12:01.250+01:00 Europe/Paris)`.
 * Times that depend on the clock or the archive also say what they were resolved from.
 */
export function describeInstant(r: ResolvedTime, label = 'until'): string {
  let line = `${label} ${isoUtc(r.ms)} (${formatInZone(r.ms, r.zone)} ${r.zone})`;
  if (r.form === 'relative' || r.form === 'latest') line += ` from ${JSON.stringify(r.input)}`;
  if (r.note !== undefined) line += `; ${r.note}`;
  return line;
}

// ---------------------------------------------------------------------------------------------
// Durations

type DurationParse = { ok: true; ms: number } | { ok: false; reason: string };

/** Units from largest to smallest; a compound duration must use them in this order, once each. */
const UNITS: readonly (readonly [string, number])[] = [
  ['w', 7 * DAY],
  ['d', DAY],
  ['h', HOUR],
  ['m', MINUTE],
  ['s', 1000],
  ['ms', 1],
];

function parseDurationText(s: string): DurationParse {
  // `ms` is tried before `m`, so that `500ms` is not read as 500 minutes followed by junk.
  const part = /(\d+)(ms|w|d|h|m|s)/y;
  let total = 0;
  let lastRank = -1;
  let at = 0;
  if (s.length === 0) return { ok: false, reason: 'it is empty' };
  while (at < s.length) {
    part.lastIndex = at;
    const m = part.exec(s);
    if (m === null) {
      return /^\d+$/.test(s.slice(at))
        ? { ok: false, reason: `${s.slice(at)} has no unit` }
        : { ok: false, reason: `${JSON.stringify(s.slice(at))} is not a number with a unit` };
    }
    const digits = m[1]!;
    const rank = UNITS.findIndex(([unit]) => unit === m[2]);
    if (rank <= lastRank) {
      return { ok: false, reason: `units must go from largest to smallest, once each` };
    }
    lastRank = rank;
    total += Number(digits) * UNITS[rank]![1];
    at = part.lastIndex;
  }
  if (!Number.isSafeInteger(total)) return { ok: false, reason: 'it is too large' };
  return { ok: true, ms: total };
}

export interface DurationOptions {
  /** Unit of a bare number, for flags documented in that unit (`--chunk-pause <ms>`). */
  bareUnit?: 'ms' | 's';
}

/**
 * A duration in ms: `250ms`, `90s`, `15m`, `24h`, `7d`, `2w`, `1h30m`. A bare number is
 * rejected unless the flag names its unit (`bareUnit`): `--retain 7` could mean anything.
 */
export function parseDuration(s: string, options: DurationOptions = {}): number {
  const text = s.trim();
  if (options.bareUnit !== undefined && /^\d+$/.test(text)) {
    const ms = Number(text) * (options.bareUnit === 's' ? 1000 : 1);
    if (Number.isSafeInteger(ms)) return ms;
  }
  const parsed = parseDurationText(text);
  if (parsed.ok) return parsed.ms;
  throw new RfError('RF_BAD_DURATION', `bad duration ${JSON.stringify(s)}: ${parsed.reason}`, {
    details: { input: s },
    hint:
      options.bareUnit === undefined
        ? `write ${ACCEPTED_DURATIONS}`
        : `write a number of ${options.bareUnit === 's' ? 'seconds' : 'milliseconds'}, or ${ACCEPTED_DURATIONS}`,
  });
}

// ---------------------------------------------------------------------------------------------
// Times

function badTime(input: string, why: string, hint = ACCEPTED_TIMES): RfError {
  return new RfError('RF_BAD_TIME', `bad time ${JSON.stringify(input)}: ${why}`, {
    details: { input },
    hint,
  });
}

/**
 * Sub-millisecond digits are truncated (see the module comment); more than nanoseconds is
 * a typo. Returns the ms and whether anything was dropped.
 */
function fractionToMs(input: string, digits: string): { ms: number; truncated: boolean } {
  if (digits.length > 9) throw badTime(input, 'more than 9 fraction digits');
  return {
    ms: Number(digits.slice(0, 3).padEnd(3, '0')),
    truncated: /[1-9]/.test(digits.slice(3)),
  };
}

const TRUNCATED_NOTE = 'sub-millisecond digits truncated: rf stamps writes to the millisecond';

const MONTH_DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

function daysInMonth(year: number, month: number): number {
  const leap = (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
  return month === 2 && leap ? 29 : MONTH_DAYS[month - 1]!;
}

const MONTHS = [
  'January',
  'February',
  'March',
  'April',
  'May',
  'June',
  'July',
  'August',
  'September',
  'October',
  'November',
  'December',
];

/** Wall-clock fields as ms "as if UTC". Unlike Date.UTC, years 0-99 stay themselves. */
function utcFromFields(
  y: number,
  mo: number,
  d: number,
  h: number,
  mi: number,
  s: number,
  ms: number,
) {
  const date = new Date(0);
  date.setUTCFullYear(y, mo - 1, d);
  date.setUTCHours(h, mi, s, ms);
  return date.getTime();
}

const ISO =
  /^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?(?:([Zz])|([+-])(\d{2})(?::?(\d{2}))?)?)?$/;

function resolveIso(input: string, m: RegExpExecArray, zone: string): ResolvedTime {
  const [, ys, mos, ds, hs, mis, ss, frac, z, sign, ohs, oms] = m;
  const year = Number(ys);
  const month = Number(mos);
  const day = Number(ds);
  const hour = Number(hs ?? 0);
  const minute = Number(mis ?? 0);
  const second = Number(ss ?? 0);
  if (month < 1 || month > 12) throw badTime(input, `month ${mos} does not exist`);
  const monthDays = daysInMonth(year, month);
  if (day < 1 || day > monthDays) {
    throw badTime(input, `${MONTHS[month - 1]} ${year} has ${monthDays} days, not a day ${ds}`);
  }
  // Unix time has no leap seconds, and 24:00 is left out on purpose: write 00:00 of the next day.
  if (hour > 23 || minute > 59 || second > 59) {
    throw badTime(input, `${hs}:${mis}${ss === undefined ? '' : `:${ss}`} is not a time of day`);
  }
  const { ms: milli, truncated } = fractionToMs(input, frac ?? '');
  const wall = utcFromFields(year, month, day, hour, minute, second, milli);
  const note = truncated ? { note: TRUNCATED_NOTE } : {};

  if (z !== undefined || sign !== undefined) {
    let offset = 0;
    if (sign !== undefined) {
      const oh = Number(ohs);
      const om = Number(oms ?? 0);
      if (oh > 23 || om > 59)
        throw badTime(input, `${sign}${ohs}:${oms ?? '00'} is not a UTC offset`);
      offset = (sign === '-' ? -1 : 1) * (oh * HOUR + om * MINUTE);
    }
    return checked({ ms: wall - offset, input, zone, form: 'iso-zoned', ...note });
  }

  const mapping = mapWallTime(wall, zone);
  const wallText = formatWall(wall);
  switch (mapping.kind) {
    case 'unique':
      return checked({ ms: mapping.ms, input, zone, form: 'iso-local', ...note });
    case 'gap': {
      const jumpFrom = formatWall(mapping.transition + mapping.offsetBefore).slice(11, 16);
      const jumpTo = formatWall(mapping.transition + mapping.offsetAfter).slice(11, 16);
      const asBefore = wall - mapping.offsetBefore;
      const asAfter = wall - mapping.offsetAfter;
      throw new RfError(
        'RF_BAD_TIME',
        `bad time ${JSON.stringify(input)}: ${wallText} does not exist in ${zone}; ` +
          `at ${isoUtc(mapping.transition)} the clocks went from ${jumpFrom} to ${jumpTo} ` +
          `(${formatOffset(mapping.offsetBefore)} to ${formatOffset(mapping.offsetAfter)})`,
        {
          details: { input, zone, transition: isoUtc(mapping.transition) },
          hint:
            `give the offset you mean: ${wallText}${formatOffset(mapping.offsetBefore)} ` +
            `(= ${isoUtc(asBefore)}) or ${wallText}${formatOffset(mapping.offsetAfter)} ` +
            `(= ${isoUtc(asAfter)})`,
        },
      );
    }
    case 'overlap': {
      const { earlier, later } = mapping;
      const first = `${wallText}${formatOffset(earlier.offset)}`;
      const second = `${wallText}${formatOffset(later.offset)}`;
      throw new RfError(
        'RF_BAD_TIME',
        `bad time ${JSON.stringify(input)}: ${wallText} happened twice in ${zone}, ` +
          `at ${first} (= ${isoUtc(earlier.ms)}) and at ${second} (= ${isoUtc(later.ms)}), ` +
          'because the clocks went back',
        {
          details: { input, zone, candidates: [isoUtc(earlier.ms), isoUtc(later.ms)] },
          hint: `give the offset you mean: ${first} (the first) or ${second} (the second)`,
        },
      );
    }
  }
}

function checked(r: ResolvedTime): ResolvedTime {
  if (!Number.isSafeInteger(r.ms) || Math.abs(r.ms) > MAX_MS) {
    throw badTime(r.input, 'it is outside the range of dates this program can represent');
  }
  return r;
}

/**
 * Resolves a `<time>` argument to an instant. Throws RF_BAD_TIME for anything it cannot read
 * (the hint lists the accepted forms) and RF_TIME_OUT_OF_RANGE for `latest` when the archive
 * holds no write yet.
 */
export function resolveTime(input: string, ctx: TimeContext): ResolvedTime {
  if (!Number.isSafeInteger(ctx.now)) throw new TypeError(`ctx.now must be ms, got ${ctx.now}`);
  const zone = canonicalZone(ctx.tz ?? machineZone());
  const text = input.trim();

  if (text.toLowerCase() === 'latest') {
    if (ctx.latest === undefined) {
      throw new RfError('RF_TIME_OUT_OF_RANGE', 'there is no latest write: the archive is empty', {
        details: { input },
        hint: 'run `rf info` to see what the store holds; `rf listen` must capture writes first',
      });
    }
    return checked({ ms: ctx.latest, input, zone, form: 'latest' });
  }

  if (text.startsWith('@')) {
    const m = /^@(\d+)(?:[.,](\d+))?$/.exec(text);
    if (m === null) {
      throw badTime(
        input,
        'not whole Unix seconds with an optional fraction, e.g. @1764000000.250',
      );
    }
    const { ms: milli, truncated } = fractionToMs(input, m[2] ?? '');
    return checked({
      ms: Number(m[1]) * 1000 + milli,
      input,
      zone,
      form: 'epoch',
      ...(truncated ? { note: TRUNCATED_NOTE } : {}),
    });
  }

  if (text.startsWith('-')) {
    const parsed = parseDurationText(text.slice(1));
    if (!parsed.ok) throw badTime(input, `not a relative time (${parsed.reason})`);
    return checked({ ms: ctx.now - parsed.ms, input, zone, form: 'relative' });
  }

  const iso = ISO.exec(text);
  if (iso !== null) return resolveIso(input, iso, zone);

  if (/^\d+(?:\.\d+)?$/.test(text)) {
    throw badTime(
      input,
      'a bare number is not a time',
      `for Unix seconds write @${text}; ${ACCEPTED_TIMES}`,
    );
  }
  throw badTime(input, 'not a time rf understands');
}

// ---------------------------------------------------------------------------------------------
// Daily schedules (`--rewrite-at`)

/** `HH:MM` in 24-hour time (one-digit hours allowed), or `off`. Errors are RF_BAD_TIME. */
export function parseClockTime(s: string): ClockTime | 'off' {
  const text = s.trim();
  if (text.toLowerCase() === 'off') return 'off';
  const m = /^(\d{1,2}):(\d{2})$/.exec(text);
  const hour = Number(m?.[1]);
  const minute = Number(m?.[2]);
  if (m === null || hour > 23 || minute > 59) {
    throw new RfError('RF_BAD_TIME', `bad time of day ${JSON.stringify(s)}`, {
      details: { input: s },
      hint: 'write HH:MM in 24-hour time, e.g. 03:30, or off',
    });
  }
  return { hour, minute };
}

/**
 * The first instant after `nowMs` at which the clock in `tz` reads `clock`: once per calendar
 * day whatever DST does. When the reading is skipped (spring forward) it fires at the moment the
 * clocks jump past it; when it happens twice (autumn) only the first counts, so a scheduler that
 * calls this again right after firing waits for the next day, not for the repeated hour.
 */
export function nextOccurrence(clock: ClockTime, nowMs: number, tz: string): number {
  assertInstant(nowMs);
  const zone = canonicalZone(tz);
  const localMidnight = Math.floor((nowMs + offsetAt(zone, nowMs)) / DAY) * DAY;
  for (let k = 0; k <= 2; k++) {
    const wall = localMidnight + k * DAY + clock.hour * HOUR + clock.minute * MINUTE;
    const mapping = mapWallTime(wall, zone);
    const at =
      mapping.kind === 'unique'
        ? mapping.ms
        : mapping.kind === 'gap'
          ? mapping.transition
          : mapping.earlier.ms;
    if (at > nowMs) return at;
  }
  // Unreachable for real zones: tomorrow's occurrence is always after now.
  throw new Error(`no occurrence of ${clock.hour}:${clock.minute} in ${zone} after ${nowMs}`);
}
