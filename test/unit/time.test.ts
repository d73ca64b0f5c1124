import { afterEach, describe, expect, it } from 'vitest';
import { isRfError, type RfCode, RfError } from '../../src/errors.js';
import {
  describeInstant,
  formatInZone,
  isoUtc,
  machineZone,
  nextOccurrence,
  parseClockTime,
  parseDuration,
  resolveTime,
} from '../../src/time.js';

/** A fixed "now": 2026-11-24T14:12:01.250Z, a Tuesday in winter time everywhere used here. */
const NOW = Date.UTC(2026, 10, 24, 14, 12, 1, 250);
const paris = { now: NOW, tz: 'Europe/Paris' };
const newYork = { now: NOW, tz: 'America/New_York' };

function utc(iso: string): number {
  const ms = Date.parse(iso);
  if (Number.isNaN(ms)) throw new Error(`bad fixture ${iso}`);
  return ms;
}

function rfError(fn: () => unknown, code: RfCode): RfError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(RfError);
    expect((err as RfError).code).toBe(code);
    return err as RfError;
  }
  throw new Error(`expected ${code}, nothing was thrown`);
}

describe('resolveTime: ISO 8601 with Z or an offset', () => {
  it.each([
    ['2026-11-24T15:12:01.250+01:00', '2026-11-24T14:12:01.250Z'],
    ['2026-11-24T15:12:01.250+0100', '2026-11-24T14:12:01.250Z'],
    ['2026-11-24T15:12:01.250+01', '2026-11-24T14:12:01.250Z'],
    ['2026-11-24T14:12:01.250Z', '2026-11-24T14:12:01.250Z'],
    ['2026-11-24t14:12:01.250z', '2026-11-24T14:12:01.250Z'],
    ['2026-11-24 09:12:01.250-05:00', '2026-11-24T14:12:01.250Z'],
    ['2026-11-24T19:42:01,250+05:30', '2026-11-24T14:12:01.250Z'],
    ['2026-11-24T15:12+01:00', '2026-11-24T14:12:00.000Z'],
    ['2026-11-24T15:12:01+01:00', '2026-11-24T14:12:01.000Z'],
    ['2026-11-24T15:12:01.2+01:00', '2026-11-24T14:12:01.200Z'],
    ['2026-11-24T15:12:01.25+01:00', '2026-11-24T14:12:01.250Z'],
  ])('%s is %s', (input, expected) => {
    const r = resolveTime(input, paris);
    expect(r).toEqual({ ms: utc(expected), input, zone: 'Europe/Paris', form: 'iso-zoned' });
  });

  it('ignores --tz for the instant: the offset decides, the zone only echoes it', () => {
    expect(resolveTime('2026-11-24T15:12:01+01:00', newYork).ms).toBe(
      utc('2026-11-24T14:12:01.000Z'),
    );
  });

  it('truncates sub-millisecond digits (floor) and says so in a note', () => {
    const r = resolveTime('2026-11-24T15:12:01.250999+01:00', paris);
    expect(r.ms).toBe(utc('2026-11-24T14:12:01.250Z'));
    expect(r.note).toMatch(/truncated/);
    const ns = resolveTime('2026-11-24T15:12:01.250999999+01:00', paris);
    expect(ns.ms).toBe(utc('2026-11-24T14:12:01.250Z'));
    // Zeros past the millisecond drop nothing, so no note.
    expect(resolveTime('2026-11-24T15:12:01.250000+01:00', paris).note).toBeUndefined();
  });

  it('rejects more than 9 fraction digits', () => {
    const err = rfError(
      () => resolveTime('2026-11-24T15:12:01.2509999999+01:00', paris),
      'RF_BAD_TIME',
    );
    expect(err.message).toMatch(/9 fraction digits/);
  });

  it.each(['+24:00', '+01:60', '+1:00'])('rejects the offset %s', (offset) => {
    rfError(() => resolveTime(`2026-11-24T15:12:01${offset}`, paris), 'RF_BAD_TIME');
  });
});

describe('resolveTime: ISO 8601 without a zone, read in --tz', () => {
  it.each([
    ['2026-11-24T15:12:01', '2026-11-24T14:12:01.000Z'],
    ['2026-11-24 15:12:01.250', '2026-11-24T14:12:01.250Z'],
    ['2026-11-24T15:12', '2026-11-24T14:12:00.000Z'],
    ['2026-11-24', '2026-11-23T23:00:00.000Z'],
    ['2026-07-01T12:00:00', '2026-07-01T10:00:00.000Z'],
  ])('%s in Europe/Paris is %s', (input, expected) => {
    expect(resolveTime(input, paris)).toEqual({
      ms: utc(expected),
      input,
      zone: 'Europe/Paris',
      form: 'iso-local',
    });
  });

  it('reads the same wall time differently in another zone', () => {
    expect(resolveTime('2026-11-24T15:12:01', newYork).ms).toBe(utc('2026-11-24T20:12:01.000Z'));
    expect(resolveTime('2026-07-01T12:00', newYork).ms).toBe(utc('2026-07-01T16:00:00.000Z'));
    expect(resolveTime('2026-11-24T15:12:01', { now: NOW, tz: 'UTC' }).ms).toBe(
      utc('2026-11-24T15:12:01.000Z'),
    );
  });

  it('canonicalises the zone name', () => {
    expect(resolveTime('2026-11-24', { now: NOW, tz: 'europe/paris' }).zone).toBe('Europe/Paris');
  });

  describe('the machine zone is the default', () => {
    const saved = process.env.TZ;
    afterEach(() => {
      if (saved === undefined) delete process.env.TZ;
      else process.env.TZ = saved;
    });

    it('follows TZ', () => {
      process.env.TZ = 'Asia/Tokyo';
      expect(machineZone()).toBe('Asia/Tokyo');
      const r = resolveTime('2026-11-24T15:12:01', { now: NOW });
      expect(r.zone).toBe('Asia/Tokyo');
      expect(r.ms).toBe(utc('2026-11-24T06:12:01.000Z'));
    });
  });

  it('rejects an unknown zone by name, even when the time does not need it', () => {
    for (const input of ['2026-11-24T15:12:01', '2026-11-24T15:12:01Z', '-15m']) {
      const err = rfError(
        () => resolveTime(input, { now: NOW, tz: 'Mars/Olympus_Mons' }),
        'RF_BAD_TIME',
      );
      expect(err.message).toContain('Mars/Olympus_Mons');
      expect(err.details).toEqual({ zone: 'Mars/Olympus_Mons' });
    }
    rfError(() => resolveTime('2026-11-24', { now: NOW, tz: '+01:00' }), 'RF_BAD_TIME');
  });
});

describe('resolveTime: DST edges', () => {
  // Europe/Paris 2026: 02:00 CET → 03:00 CEST on 29 March (01:00Z);
  // 03:00 CEST → 02:00 CET on 25 October (01:00Z).
  it('Europe/Paris spring gap: the last ms before and the first after', () => {
    expect(resolveTime('2026-03-29T01:59:59.999', paris).ms).toBe(utc('2026-03-29T00:59:59.999Z'));
    expect(resolveTime('2026-03-29T03:00', paris).ms).toBe(utc('2026-03-29T01:00:00.000Z'));
  });

  it('Europe/Paris spring gap: a wall time that never happened is rejected, with both readings', () => {
    const err = rfError(() => resolveTime('2026-03-29T02:30', paris), 'RF_BAD_TIME');
    expect(err.message).toContain('does not exist in Europe/Paris');
    expect(err.message).toContain('from 02:00 to 03:00');
    expect(err.details).toMatchObject({
      input: '2026-03-29T02:30',
      zone: 'Europe/Paris',
      transition: '2026-03-29T01:00:00.000Z',
    });
    expect(err.hint).toContain('2026-03-29T02:30:00.000+01:00 (= 2026-03-29T01:30:00.000Z)');
    expect(err.hint).toContain('2026-03-29T02:30:00.000+02:00 (= 2026-03-29T00:30:00.000Z)');
    // The edges of the gap: 02:00 does not exist either, 01:59:59.999 does (above).
    rfError(() => resolveTime('2026-03-29T02:00', paris), 'RF_BAD_TIME');
    rfError(() => resolveTime('2026-03-29T02:59:59.999', paris), 'RF_BAD_TIME');
  });

  it('Europe/Paris autumn overlap: rejected, showing both instants with their offsets', () => {
    const err = rfError(() => resolveTime('2026-10-25T02:30', paris), 'RF_BAD_TIME');
    expect(err.message).toContain('happened twice in Europe/Paris');
    expect(err.message).toContain('2026-10-25T02:30:00.000+02:00 (= 2026-10-25T00:30:00.000Z)');
    expect(err.message).toContain('2026-10-25T02:30:00.000+01:00 (= 2026-10-25T01:30:00.000Z)');
    expect(err.details).toMatchObject({
      candidates: ['2026-10-25T00:30:00.000Z', '2026-10-25T01:30:00.000Z'],
    });
    expect(err.hint).toMatch(/\+02:00 \(the first\).*\+01:00 \(the second\)/);
    rfError(() => resolveTime('2026-10-25T02:00', paris), 'RF_BAD_TIME');
    rfError(() => resolveTime('2026-10-25T02:59:59.999', paris), 'RF_BAD_TIME');
  });

  it('Europe/Paris autumn overlap: each reading is reachable with an explicit offset', () => {
    expect(resolveTime('2026-10-25T02:30+02:00', paris).ms).toBe(utc('2026-10-25T00:30:00.000Z'));
    expect(resolveTime('2026-10-25T02:30+01:00', paris).ms).toBe(utc('2026-10-25T01:30:00.000Z'));
    expect(resolveTime('2026-10-25T01:59:59.999', paris).ms).toBe(utc('2026-10-24T23:59:59.999Z'));
    expect(resolveTime('2026-10-25T03:00', paris).ms).toBe(utc('2026-10-25T02:00:00.000Z'));
  });

  // America/New_York 2026: 02:00 EST → 03:00 EDT on 8 March (07:00Z);
  // 02:00 EDT → 01:00 EST on 1 November (06:00Z).
  it('America/New_York spring gap', () => {
    const err = rfError(() => resolveTime('2026-03-08 02:15', newYork), 'RF_BAD_TIME');
    expect(err.details).toMatchObject({ transition: '2026-03-08T07:00:00.000Z' });
    expect(err.hint).toContain('-05:00');
    expect(err.hint).toContain('-04:00');
    expect(resolveTime('2026-03-08 01:59', newYork).ms).toBe(utc('2026-03-08T06:59:00.000Z'));
    expect(resolveTime('2026-03-08 03:00', newYork).ms).toBe(utc('2026-03-08T07:00:00.000Z'));
  });

  it('America/New_York autumn overlap', () => {
    const err = rfError(() => resolveTime('2026-11-01T01:30', newYork), 'RF_BAD_TIME');
    expect(err.details).toMatchObject({
      candidates: ['2026-11-01T05:30:00.000Z', '2026-11-01T06:30:00.000Z'],
    });
    expect(resolveTime('2026-11-01T00:59', newYork).ms).toBe(utc('2026-11-01T04:59:00.000Z'));
    expect(resolveTime('2026-11-01T02:00', newYork).ms).toBe(utc('2026-11-01T07:00:00.000Z'));
  });

  it('a zone without DST has neither gaps nor overlaps', () => {
    const tokyo = { now: NOW, tz: 'Asia/Tokyo' };
    expect(resolveTime('2026-03-29T02:30', tokyo).ms).toBe(utc('2026-03-28T17:30:00.000Z'));
    expect(resolveTime('2026-10-25T02:30', tokyo).ms).toBe(utc('2026-10-24T17:30:00.000Z'));
  });
});

describe('resolveTime: calendar checks', () => {
  it('accepts leap days', () => {
    expect(resolveTime('2028-02-29T12:00:00Z', paris).ms).toBe(utc('2028-02-29T12:00:00.000Z'));
    expect(resolveTime('2000-02-29', { now: NOW, tz: 'UTC' }).ms).toBe(utc('2000-02-29T00:00:00Z'));
  });

  it.each([
    ['2026-02-29', /February 2026 has 28 days/],
    ['2100-02-29T00:00Z', /February 2100 has 28 days/],
    ['2026-04-31', /April 2026 has 30 days/],
    ['2026-11-00', /has 30 days/],
    ['2026-13-01', /month 13/],
    ['2026-00-01', /month 00/],
    ['2026-11-24T24:00', /not a time of day/],
    ['2026-11-24T15:60', /not a time of day/],
    ['2026-11-24T15:12:60Z', /not a time of day/],
  ])('rejects %s', (input, why) => {
    const err = rfError(() => resolveTime(input, paris), 'RF_BAD_TIME');
    expect(err.message).toMatch(why);
    expect(err.details).toEqual({ input });
  });

  it('relative times count exact 24 h days, also across a leap day', () => {
    const now = utc('2028-03-01T00:00:00Z');
    expect(resolveTime('-1d', { now, tz: 'UTC' }).ms).toBe(utc('2028-02-29T00:00:00Z'));
  });
});

describe('resolveTime: @unix seconds', () => {
  it.each([
    ['@1764000000', 1_764_000_000_000],
    ['@1764000000.25', 1_764_000_000_250],
    ['@1764000000.250', 1_764_000_000_250],
    ['@1764000000,5', 1_764_000_000_500],
    ['@0', 0],
  ])('%s', (input, ms) => {
    expect(resolveTime(input, paris)).toEqual({ ms, input, zone: 'Europe/Paris', form: 'epoch' });
  });

  it('truncates microseconds, as MONITOR prints them, with a note', () => {
    const r = resolveTime('@1764000000.250123', paris);
    expect(r.ms).toBe(1_764_000_000_250);
    expect(r.note).toMatch(/truncated/);
  });

  it.each(['@', '@-5', '@abc', '@1764000000.', '@1e9', '@99999999999999999'])(
    'rejects %s',
    (input) => {
      rfError(() => resolveTime(input, paris), 'RF_BAD_TIME');
    },
  );
});

describe('resolveTime: relative to now', () => {
  it.each([
    ['-90s', 90_000],
    ['-15m', 15 * 60_000],
    ['-2h', 2 * 3_600_000],
    ['-1d', 86_400_000],
    ['-1w', 7 * 86_400_000],
    ['-500ms', 500],
    ['-1h30m', 90 * 60_000],
    ['-1d2h3m4s5ms', 86_400_000 + 2 * 3_600_000 + 3 * 60_000 + 4000 + 5],
    ['-0s', 0],
  ])('%s is now minus %d ms', (input, back) => {
    expect(resolveTime(input, paris)).toEqual({
      ms: NOW - back,
      input,
      zone: 'Europe/Paris',
      form: 'relative',
    });
  });

  it.each(['-', '-15', '-15x', '-1m1h', '-1h1h', '-1.5h', '+15m', '- 15m'])(
    'rejects %s',
    (input) => {
      rfError(() => resolveTime(input, paris), 'RF_BAD_TIME');
    },
  );
});

describe('resolveTime: latest', () => {
  it('is the archive’s last write', () => {
    const latest = utc('2026-11-24T14:00:00.123Z');
    expect(resolveTime('latest', { ...paris, latest })).toEqual({
      ms: latest,
      input: 'latest',
      zone: 'Europe/Paris',
      form: 'latest',
    });
  });

  it('is out of range when the archive is empty', () => {
    const err = rfError(() => resolveTime('latest', paris), 'RF_TIME_OUT_OF_RANGE');
    expect(err.hint).toContain('rf info');
  });
});

describe('resolveTime: anything else', () => {
  it.each([
    '',
    'yesterday',
    'now',
    '2026-11-24Z',
    '2026-11-24T15',
    '26-11-24',
    '2026/11/24',
    '24/11/2026 15:12',
    '2026-11-24T15:12:01.250+01:00 extra',
  ])('rejects %j with the accepted forms in the hint', (input) => {
    const err = rfError(() => resolveTime(input, paris), 'RF_BAD_TIME');
    expect(err.message).toContain(JSON.stringify(input));
    expect(err.details).toEqual({ input });
    expect(err.hint).toContain('2026-11-24T15:12:01.250+01:00');
    expect(err.hint).toContain('@1764000000.250');
    expect(err.hint).toContain('-15m');
    expect(err.hint).toContain('latest');
  });

  it('suggests @ for a bare number', () => {
    const err = rfError(() => resolveTime('1764000000', paris), 'RF_BAD_TIME');
    expect(err.hint).toContain('@1764000000');
  });

  it('throws a TypeError when the caller forgets now', () => {
    expect(() => resolveTime('-15m', { now: Number.NaN })).toThrow(TypeError);
  });
});

describe('formatting', () => {
  it('isoUtc always has milliseconds', () => {
    expect(isoUtc(utc('2026-11-24T14:12:01.250Z'))).toBe('2026-11-24T14:12:01.250Z');
    expect(isoUtc(utc('2026-11-24T14:12:01Z'))).toBe('2026-11-24T14:12:01.000Z');
    expect(isoUtc(0)).toBe('1970-01-01T00:00:00.000Z');
  });

  it.each([
    ['2026-11-24T14:12:01.250Z', 'Europe/Paris', '2026-11-24T15:12:01.250+01:00'],
    ['2026-07-01T10:00:00.000Z', 'Europe/Paris', '2026-07-01T12:00:00.000+02:00'],
    ['2026-11-24T14:12:01.250Z', 'America/New_York', '2026-11-24T09:12:01.250-05:00'],
    ['2026-11-24T14:12:01.250Z', 'Asia/Kolkata', '2026-11-24T19:42:01.250+05:30'],
    ['2026-11-24T14:12:01.250Z', 'UTC', '2026-11-24T14:12:01.250+00:00'],
    ['2026-10-25T00:30:00.000Z', 'Europe/Paris', '2026-10-25T02:30:00.000+02:00'],
    ['2026-10-25T01:30:00.000Z', 'Europe/Paris', '2026-10-25T02:30:00.000+01:00'],
    ['2028-02-29T23:30:00.000Z', 'Asia/Tokyo', '2028-03-01T08:30:00.000+09:00'],
  ])('formatInZone(%s, %s) is %s', (iso, tz, expected) => {
    expect(formatInZone(utc(iso), tz)).toBe(expected);
  });

  it('round-trips: a wall time formatInZone prints reads back in its zone', () => {
    // Without the offset the wall time is read through the zone rules again, so this checks
    // formatting and resolution agree all year, including both readings of repeated hours.
    for (const tz of ['Europe/Paris', 'America/New_York', 'Australia/Lord_Howe']) {
      let repeated = 0;
      for (
        let ms = utc('2026-01-01T00:00:00Z');
        ms < utc('2027-01-01T00:00:00Z');
        ms += 2_345_678
      ) {
        const wall = formatInZone(ms, tz).slice(0, 23);
        try {
          expect(resolveTime(wall, { now: NOW, tz }).ms).toBe(ms);
        } catch (err) {
          expect(isRfError(err, 'RF_BAD_TIME')).toBe(true);
          expect((err as RfError).details.candidates).toContain(isoUtc(ms));
          repeated++;
        }
      }
      expect(repeated, `${tz}: no sample fell in the repeated hour`).toBeGreaterThan(0);
    }
  });

  it('formatInZone rejects an unknown zone', () => {
    rfError(() => formatInZone(0, 'Nowhere/Land'), 'RF_BAD_TIME');
  });

  it('describeInstant prints UTC and the zone used', () => {
    const r = resolveTime('2026-11-24 15:12:01.250', paris);
    expect(describeInstant(r)).toBe(
      'until 2026-11-24T14:12:01.250Z (2026-11-24T15:12:01.250+01:00 Europe/Paris)',
    );
    expect(describeInstant(r, 'since')).toMatch(/^since 2026-11-24T14:12:01.250Z /);
  });

  it('describeInstant says what a relative time or latest was resolved from, and any note', () => {
    expect(describeInstant(resolveTime('-15m', newYork))).toBe(
      'until 2026-11-24T13:57:01.250Z (2026-11-24T08:57:01.250-05:00 America/New_York) from "-15m"',
    );
    expect(describeInstant(resolveTime('@1764000000.250999', { now: NOW, tz: 'UTC' }))).toBe(
      'until 2025-11-24T16:00:00.250Z (2025-11-24T16:00:00.250+00:00 UTC); ' +
        'sub-millisecond digits truncated: rf stamps writes to the millisecond',
    );
  });
});

describe('parseDuration', () => {
  it.each([
    ['250ms', 250],
    ['90s', 90_000],
    ['15m', 900_000],
    ['24h', 86_400_000],
    ['7d', 604_800_000],
    ['2w', 1_209_600_000],
    ['1h30m', 5_400_000],
    ['1m500ms', 60_500],
    ['0ms', 0],
    [' 24h ', 86_400_000],
  ])('%j is %d ms', (s, ms) => {
    expect(parseDuration(s)).toBe(ms);
  });

  it('rejects a bare number unless the flag names the unit', () => {
    const err = rfError(() => parseDuration('7'), 'RF_BAD_DURATION');
    expect(err.message).toContain('has no unit');
    expect(err.details).toEqual({ input: '7' });
    expect(parseDuration('250', { bareUnit: 'ms' })).toBe(250);
    expect(parseDuration('3', { bareUnit: 's' })).toBe(3000);
    // A unit still wins where a bare number is allowed.
    expect(parseDuration('2s', { bareUnit: 'ms' })).toBe(2000);
  });

  it.each([
    '',
    'h',
    '1x',
    '1.5h',
    '-1h',
    '1h1h',
    '30m1h',
    '1 h',
    '1h 30m',
    '99999999999999w',
    '1hh',
  ])('rejects %j', (s) => {
    const err = rfError(() => parseDuration(s), 'RF_BAD_DURATION');
    expect(err.message).toContain(JSON.stringify(s));
    expect(err.hint).toContain('1h30m');
  });

  it('names the bare unit in the hint where one is allowed', () => {
    const err = rfError(() => parseDuration('fast', { bareUnit: 'ms' }), 'RF_BAD_DURATION');
    expect(err.hint).toMatch(/milliseconds/);
  });
});

describe('parseClockTime', () => {
  it.each([
    ['03:30', { hour: 3, minute: 30 }],
    ['3:30', { hour: 3, minute: 30 }],
    ['00:00', { hour: 0, minute: 0 }],
    ['23:59', { hour: 23, minute: 59 }],
    ['off', 'off'],
    ['OFF', 'off'],
  ])('%s', (s, expected) => {
    expect(parseClockTime(s)).toEqual(expected);
  });

  it.each(['24:00', '12:60', '0330', '3:3', 'noon', '', '03:30:00'])('rejects %j', (s) => {
    const err = rfError(() => parseClockTime(s), 'RF_BAD_TIME');
    expect(err.hint).toContain('HH:MM');
  });
});

describe('nextOccurrence', () => {
  const at = (hour: number, minute: number) => ({ hour, minute });

  it('is later today when the time has not come yet, else tomorrow', () => {
    // NOW is 15:12 in Paris.
    expect(isoUtc(nextOccurrence(at(16, 0), NOW, 'Europe/Paris'))).toBe('2026-11-24T15:00:00.000Z');
    expect(isoUtc(nextOccurrence(at(3, 30), NOW, 'Europe/Paris'))).toBe('2026-11-25T02:30:00.000Z');
    expect(isoUtc(nextOccurrence(at(3, 30), NOW, 'America/New_York'))).toBe(
      '2026-11-25T08:30:00.000Z',
    );
  });

  it('is strictly after now, so a scheduler that just fired waits a day', () => {
    const fired = utc('2026-11-25T02:30:00.000Z');
    expect(isoUtc(nextOccurrence(at(3, 30), fired, 'Europe/Paris'))).toBe(
      '2026-11-26T02:30:00.000Z',
    );
  });

  it('uses the local date, not the UTC one', () => {
    // 23:30 UTC on the 24th is already the 25th in Tokyo.
    const now = utc('2026-11-24T23:30:00Z');
    expect(isoUtc(nextOccurrence(at(9, 0), now, 'Asia/Tokyo'))).toBe('2026-11-25T00:00:00.000Z');
  });

  it('fires when the clocks jump past a skipped time (spring forward)', () => {
    const before = utc('2026-03-28T12:00:00Z');
    expect(isoUtc(nextOccurrence(at(2, 30), before, 'Europe/Paris'))).toBe(
      '2026-03-29T01:00:00.000Z',
    );
    const after = nextOccurrence(at(2, 30), utc('2026-03-29T01:00:00Z'), 'Europe/Paris');
    expect(isoUtc(after)).toBe('2026-03-30T00:30:00.000Z');
    expect(isoUtc(nextOccurrence(at(2, 30), utc('2026-03-07T12:00:00Z'), 'America/New_York'))).toBe(
      '2026-03-08T07:00:00.000Z',
    );
  });

  it('fires once on a repeated time (autumn), at the first of the two', () => {
    const first = nextOccurrence(at(2, 30), utc('2026-10-24T12:00:00Z'), 'Europe/Paris');
    expect(isoUtc(first)).toBe('2026-10-25T00:30:00.000Z');
    const second = nextOccurrence(at(2, 30), first, 'Europe/Paris');
    expect(isoUtc(second)).toBe('2026-10-26T01:30:00.000Z');
    expect(isoUtc(nextOccurrence(at(1, 30), utc('2026-11-01T05:30:00Z'), 'America/New_York'))).toBe(
      '2026-11-02T06:30:00.000Z',
    );
  });

  it('crosses a leap day', () => {
    const now = utc('2028-02-28T23:00:00Z');
    expect(isoUtc(nextOccurrence(at(0, 0), now, 'UTC'))).toBe('2028-02-29T00:00:00.000Z');
    expect(isoUtc(nextOccurrence(at(0, 0), utc('2028-02-29T00:00:00Z'), 'UTC'))).toBe(
      '2028-03-01T00:00:00.000Z',
    );
  });

  it('rejects an unknown zone', () => {
    rfError(() => nextOccurrence(at(3, 30), NOW, 'Atlantis/Capital'), 'RF_BAD_TIME');
  });
});
