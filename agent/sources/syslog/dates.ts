/**
 * Calendar pieces shared by the built-in timestamp styles and Go layouts: lexing helpers that fill a
 * reusable DateParts, and the conversion of those parts to epoch milliseconds.
 */

import { MAX_DATE_MS } from '../../types.ts';

export const DAY_MS = 86_400_000;
const HOUR_MS = 3_600_000;
const MINUTE_MS = 60_000;
/** More fraction digits than any clock prints; bounds the work on hostile input. */
const MAX_FRACTION_DIGITS = 12;

/** One timestamp's fields as read from a line, reused from line to line. */
export class DateParts {
  /** -1 when the stamp has no year (traditional syslog): the year is inferred from the clock. */
  year = -1;
  month = 0;
  day = 0;
  hour = 0;
  minute = 0;
  second = 0;
  millis = 0;
  /** Minutes east of UTC; NaN when the stamp names no zone, which means the local time zone. */
  offset = Number.NaN;
  /** Set instead of the fields by stamps that are epoch seconds. */
  epochMs = Number.NaN;

  reset(): void {
    this.year = -1;
    this.month = 0;
    this.day = 0;
    this.hour = 0;
    this.minute = 0;
    this.second = 0;
    this.millis = 0;
    this.offset = Number.NaN;
    this.epochMs = Number.NaN;
  }
}

/** Reads a stamp starting at `start` into parts; returns the index after it, or -1. */
export type StampParser = (text: string, start: number, end: number, parts: DateParts) => number;

export function isDigitAt(text: string, i: number, end: number): boolean {
  if (i >= end) return false;
  const c = text.charCodeAt(i);
  return c >= 48 && c <= 57;
}

/** Exactly `count` digits at i as a number, or -1. */
export function digitsAt(text: string, i: number, count: number, end: number): number {
  if (i + count > end) return -1;
  let value = 0;
  for (let k = i; k < i + count; k++) {
    const d = text.charCodeAt(k) - 48;
    if (d < 0 || d > 9) return -1;
    value = value * 10 + d;
  }
  return value;
}

/** One or two digits at i, for Go's unpadded fields (`1`, `2`, `15`, `3`, `4`, `5`), or null. */
export function shortNumberAt(text: string, i: number, end: number): { value: number; next: number } | null {
  if (!isDigitAt(text, i, end)) return null;
  if (isDigitAt(text, i + 1, end)) {
    return { value: (text.charCodeAt(i) - 48) * 10 + text.charCodeAt(i + 1) - 48, next: i + 2 };
  }
  return { value: text.charCodeAt(i) - 48, next: i + 1 };
}

/** `.123456` or `,123` at i: sets millis (the rest is finer than a PacketDrop keeps); returns the index after. */
export function fractionAt(text: string, i: number, end: number, parts: DateParts): number {
  const c = text.charCodeAt(i);
  if ((c !== 46 && c !== 44) || !isDigitAt(text, i + 1, end)) return i;
  let k = i + 1;
  let millis = 0;
  while (isDigitAt(text, k, end)) {
    if (k - i > MAX_FRACTION_DIGITS) return -1;
    if (k - i <= 3) millis = millis * 10 + text.charCodeAt(k) - 48;
    k++;
  }
  for (let scale = k - i - 1; scale < 3; scale++) millis *= 10;
  parts.millis = millis;
  return k;
}

/** `hh:mm:ss` with two digits each (every syslog style pads them); returns the index after, or -1. */
export function clockAt(text: string, i: number, end: number, parts: DateParts): number {
  const hour = digitsAt(text, i, 2, end);
  const minute = digitsAt(text, i + 3, 2, end);
  const second = digitsAt(text, i + 6, 2, end);
  if (hour < 0 || minute < 0 || second < 0) return -1;
  if (text.charCodeAt(i + 2) !== 58 || text.charCodeAt(i + 5) !== 58) return -1;
  parts.hour = hour;
  parts.minute = minute;
  parts.second = second;
  return i + 8;
}

/** `+hh:mm`, `+hhmm`, `+hh` or `Z` at i; returns the index after, i when there is no zone, -1 if malformed. */
export function offsetAt(text: string, i: number, end: number, parts: DateParts): number {
  if (i >= end) return i;
  const c = text.charCodeAt(i);
  if (c === 90 || c === 122) {
    parts.offset = 0;
    return i + 1;
  }
  if (c !== 43 && c !== 45) return i;
  const hours = digitsAt(text, i + 1, 2, end);
  if (hours < 0 || hours > 23) return -1;
  let k = i + 3;
  if (text.charCodeAt(k) === 58) k++;
  let minutes = 0;
  if (isDigitAt(text, k, end)) {
    minutes = digitsAt(text, k, 2, end);
    if (minutes < 0 || minutes > 59) return -1;
    k += 2;
  } else if (k !== i + 3) {
    return -1;
  }
  parts.offset = (c === 45 ? -1 : 1) * (hours * 60 + minutes);
  return k;
}

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
const LONG_MONTHS = [
  'january',
  'february',
  'march',
  'april',
  'may',
  'june',
  'july',
  'august',
  'september',
  'october',
  'november',
  'december',
];
const WEEKDAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];
const LONG_WEEKDAYS = ['sunday', 'monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday'];

/** ASCII case-insensitive comparison of text at i with a lowercase word. */
function wordAt(text: string, i: number, end: number, lower: string): boolean {
  if (i + lower.length > end) return false;
  for (let k = 0; k < lower.length; k++) {
    if ((text.charCodeAt(i + k) | 0x20) !== lower.charCodeAt(k)) return false;
  }
  return true;
}

/** Index in `names` of the name at i, or -1. */
function nameAt(text: string, i: number, end: number, names: readonly string[]): number {
  for (let n = 0; n < names.length; n++) if (wordAt(text, i, end, names[n]!)) return n;
  return -1;
}

/** `Jan` or `January` at i (case-insensitive, as Go accepts): sets the month; returns the index after, or -1. */
export function monthNameAt(text: string, i: number, end: number, parts: DateParts, long: boolean): number {
  const names = long ? LONG_MONTHS : MONTHS;
  const n = nameAt(text, i, end, names);
  if (n < 0) return -1;
  parts.month = n + 1;
  return i + names[n]!.length;
}

/** `Mon` or `Monday` at i; weekdays are checked for form only, the date decides. */
export function weekdayAt(text: string, i: number, end: number, long: boolean): number {
  const names = long ? LONG_WEEKDAYS : WEEKDAYS;
  const n = nameAt(text, i, end, names);
  return n < 0 ? -1 : i + names[n]!.length;
}

/**
 * Offsets of the abbreviations journalctl and syslog daemons commonly print. Others are read as the
 * local zone, as Go does for an abbreviation of the current location; ambiguous ones (IST, BST) too.
 */
const ZONE_OFFSETS = new Map<string, number>([
  ['UTC', 0],
  ['UT', 0],
  ['GMT', 0],
  ['Z', 0],
  ['WET', 0],
  ['WEST', 60],
  ['CET', 60],
  ['CEST', 120],
  ['MET', 60],
  ['MEST', 120],
  ['EET', 120],
  ['EEST', 180],
  ['MSK', 180],
  ['EST', -300],
  ['EDT', -240],
  ['CST', -360],
  ['CDT', -300],
  ['MST', -420],
  ['MDT', -360],
  ['PST', -480],
  ['PDT', -420],
  ['AKST', -540],
  ['AKDT', -480],
  ['HST', -600],
  ['JST', 540],
  ['KST', 540],
  ['HKT', 480],
  ['SGT', 480],
  ['AWST', 480],
  ['ACST', 570],
  ['ACDT', 630],
  ['AEST', 600],
  ['AEDT', 660],
  ['NZST', 720],
  ['NZDT', 780],
]);

/** Zone abbreviation (`CEST`) or strftime's numeric stand-in (`+03`, `-0530`) at i; returns the index after, or -1. */
export function zoneNameAt(text: string, i: number, end: number, parts: DateParts): number {
  const c = text.charCodeAt(i);
  if (c === 43 || c === 45) return offsetAt(text, i, end, parts);
  let k = i;
  while (k < end && k - i <= 5) {
    const u = text.charCodeAt(k);
    if (u < 65 || u > 90) break;
    k++;
  }
  if (k - i < 1 || k - i > 5) return -1;
  parts.offset = ZONE_OFFSETS.get(text.slice(i, k)) ?? Number.NaN;
  return k;
}

function isLeapYear(year: number): boolean {
  return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
}

const MONTH_DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

export function daysInMonth(year: number, month: number): number {
  return month === 2 && isLeapYear(year) ? 29 : MONTH_DAYS[month - 1]!;
}

/** Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil): no Date object needed. */
function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yearOfEra = y - era * 400;
  const dayOfYear = Math.floor((153 * ((month + 9) % 12) + 2) / 5) + day - 1;
  const dayOfEra = yearOfEra * 365 + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100) + dayOfYear;
  return era * 146_097 + dayOfEra - 719_468;
}

/** The parts' wall-clock reading as if it were UTC. */
function wallClockMs(parts: DateParts, year: number): number {
  return (
    daysFromCivil(year, parts.month, parts.day) * DAY_MS +
    parts.hour * HOUR_MS +
    parts.minute * MINUTE_MS +
    parts.second * 1000 +
    parts.millis
  );
}

function isValidClock(parts: DateParts): boolean {
  return (
    parts.month >= 1 &&
    parts.month <= 12 &&
    parts.day >= 1 &&
    parts.hour <= 23 &&
    parts.minute <= 59 &&
    parts.second <= 59
  );
}

/**
 * Turns DateParts into epoch ms. Zone-less stamps are local time (syslog daemons write the host's
 * local time); year-less ones take the latest year that puts them at most a day after now().
 * Caches keep the per-line cost to arithmetic: the local offset per wall-clock hour, the current year.
 */
export class TimeResolver {
  private readonly now: () => number;
  private offsetHour = Number.NaN;
  private offsetMs = 0;
  private yearStart = 0;
  private yearEnd = -1;
  private year = 0;

  constructor(now: () => number) {
    this.now = now;
  }

  /** Epoch ms, or NaN when the parts name no real date. */
  resolve(parts: DateParts): number {
    if (!Number.isNaN(parts.epochMs))
      return Math.abs(parts.epochMs) <= MAX_DATE_MS ? parts.epochMs : Number.NaN;
    if (!isValidClock(parts)) return Number.NaN;
    return parts.year < 0 ? this.inferYear(parts) : this.atYear(parts, parts.year);
  }

  private atYear(parts: DateParts, year: number): number {
    if (parts.day > daysInMonth(year, parts.month)) return Number.NaN;
    const wall = wallClockMs(parts, year);
    return Number.isNaN(parts.offset) ? this.localToEpoch(wall) : wall - parts.offset * MINUTE_MS;
  }

  private inferYear(parts: DateParts): number {
    const now = this.now();
    const limit = now + DAY_MS;
    const current = this.yearOf(now);
    // Only in the last days of December can a stamp from next January be at most a day ahead.
    const first = now >= this.yearEnd - 2 * DAY_MS ? current + 1 : current;
    // Eight years back reaches a leap year for a February 29 stamp.
    for (let year = first; year >= current - 8; year--) {
      const ms = this.atYear(parts, year);
      if (ms <= limit) return ms;
    }
    return Number.NaN;
  }

  /** UTC year of `ms`, recomputed only when `ms` leaves the cached year. */
  private yearOf(ms: number): number {
    if (ms < this.yearStart || ms >= this.yearEnd) {
      this.year = new Date(ms).getUTCFullYear();
      this.yearStart = Date.UTC(this.year, 0, 1);
      this.yearEnd = Date.UTC(this.year + 1, 0, 1);
    }
    return this.year;
  }

  /** Local wall clock to epoch; the offset is looked up once per wall-clock hour. */
  private localToEpoch(wall: number): number {
    const hour = Math.floor(wall / HOUR_MS);
    if (hour !== this.offsetHour) {
      const guess = wall + new Date(wall).getTimezoneOffset() * MINUTE_MS;
      this.offsetMs = new Date(guess).getTimezoneOffset() * MINUTE_MS;
      this.offsetHour = hour;
    }
    return wall + this.offsetMs;
  }
}
