/**
 * Timestamps at the start of syslog-style lines. The same kernel line reaches files through rsyslog,
 * syslog-ng and `journalctl -o ...`, each with its own stamp; all of these are recognised:
 *   2026-04-05T20:41:42.123456+02:00   RFC 3339, any fraction, `Z` or offset (rsyslog, journalctl short-iso-precise)
 *   2026-04-05T20:41:42+0200           journalctl short-iso (offset without colon)
 *   Sun 2026-04-05 20:41:42 CEST       journalctl short-full
 *   Apr  5 20:41:42 / Apr 05 20:41:42.123456   traditional syslog and journalctl short(-precise), no year
 *   1775414502.123456                  journalctl short-unix
 */

import {
  clockAt,
  type DateParts,
  digitsAt,
  fractionAt,
  isDigitAt,
  monthNameAt,
  offsetAt,
  type StampParser,
  weekdayAt,
  zoneNameAt,
} from './dates.ts';
import { compileGoLayout } from './golayout.ts';

const SPACE = 32;
/** Twelve digits of seconds reach year 33658: enough for any clock, bounded for hostile input. */
const MAX_EPOCH_DIGITS = 12;

/** `2026-04-05` at i; returns the index after, or -1. */
function dateAt(text: string, i: number, end: number, parts: DateParts): number {
  const year = digitsAt(text, i, 4, end);
  const month = digitsAt(text, i + 5, 2, end);
  const day = digitsAt(text, i + 8, 2, end);
  if (year < 0 || month < 0 || day < 0) return -1;
  if (text.charCodeAt(i + 4) !== 45 || text.charCodeAt(i + 7) !== 45) return -1;
  parts.year = year;
  parts.month = month;
  parts.day = day;
  return i + 10;
}

/** RFC 3339's date and clock, `2026-04-05T20:41:42` (a space may stand for the `T`); returns the index after. */
function isoClockAt(text: string, i: number, end: number, parts: DateParts): number {
  const k = dateAt(text, i, end, parts);
  if (k < 0) return -1;
  const separator = text.charCodeAt(k);
  if (separator !== 84 && separator !== 116 && separator !== SPACE) return -1;
  return clockAt(text, k + 1, end, parts);
}

/** What follows the clock of an RFC 3339 stamp: fraction and zone. */
function isoTailAt(text: string, i: number, end: number, parts: DateParts): number {
  const k = fractionAt(text, i, end, parts);
  return k < 0 ? -1 : offsetAt(text, k, end, parts);
}

/** RFC 3339 and journalctl short-iso(-precise). */
function isoAt(text: string, i: number, end: number, parts: DateParts): number {
  const k = isoClockAt(text, i, end, parts);
  return k < 0 ? -1 : isoTailAt(text, k, end, parts);
}

function tokenEnd(text: string, i: number, end: number): number {
  const space = text.indexOf(' ', i);
  return space < 0 || space > end ? end : space;
}

/** journalctl short-full: `Sun 2026-04-05 20:41:42 CEST`; a token that is no zone name is the host. */
function weekdayIsoAt(text: string, i: number, end: number, parts: DateParts): number {
  let k = weekdayAt(text, i, end, false);
  if (k < 0 || text.charCodeAt(k) !== SPACE) return -1;
  k = isoAt(text, k + 1, end, parts);
  if (k < 0 || !Number.isNaN(parts.offset) || text.charCodeAt(k) !== SPACE) return k;
  const zoneEnd = tokenEnd(text, k + 1, end);
  if (zoneNameAt(text, k + 1, zoneEnd, parts) === zoneEnd) return zoneEnd;
  parts.offset = Number.NaN;
  return k;
}

/** Traditional syslog's date and clock, `Apr  5 20:41:42`; returns the index after. */
function traditionalClockAt(text: string, i: number, end: number, parts: DateParts): number {
  let k = monthNameAt(text, i, end, parts, false);
  if (k < 0 || text.charCodeAt(k) !== SPACE) return -1;
  k++;
  if (text.charCodeAt(k) === SPACE) k++;
  if (!isDigitAt(text, k, end)) return -1;
  const twoDigits = isDigitAt(text, k + 1, end);
  parts.day = twoDigits ? digitsAt(text, k, 2, end) : text.charCodeAt(k) - 48;
  k += twoDigits ? 2 : 1;
  if (text.charCodeAt(k) !== SPACE) return -1;
  return clockAt(text, k + 1, end, parts);
}

/** journalctl short-unix: seconds with a fraction, which tells it apart from other leading numbers. */
function epochAt(text: string, i: number, end: number, parts: DateParts): number {
  let k = i;
  let seconds = 0;
  while (isDigitAt(text, k, end)) {
    if (k - i >= MAX_EPOCH_DIGITS) return -1;
    seconds = seconds * 10 + text.charCodeAt(k) - 48;
    k++;
  }
  if (k === i || text.charCodeAt(k) !== 46) return -1;
  const after = fractionAt(text, k, end, parts);
  if (after <= k) return -1;
  parts.epochMs = seconds * 1000 + parts.millis;
  return after;
}

/** Longer than any date and clock that a ClockMemo remembers. */
const MEMO_CHARS = 32;

/**
 * The date and clock of the previous stamp of one style, by their text. Lines come many to a second,
 * so most stamps begin with the same text as the one before: comparing it is cheaper than reading
 * the month name and digits again. Only for styles whose date and clock have a fixed extent.
 */
class ClockMemo {
  private readonly codes = new Uint16Array(MEMO_CHARS);
  private length = 0;
  private readonly readClock: StampParser;
  private year = -1;
  private month = 0;
  private day = 0;
  private hour = 0;
  private minute = 0;
  private second = 0;

  constructor(readClock: StampParser) {
    this.readClock = readClock;
  }

  /** Reads the date and clock at `start` into parts; returns the index after them, or -1. */
  clockAt(text: string, start: number, end: number, parts: DateParts): number {
    const { codes, length } = this;
    let k = 0;
    if (length > 0 && start + length <= end) {
      while (k < length && text.charCodeAt(start + k) === codes[k]) k++;
    }
    if (k > 0 && k === length) {
      parts.year = this.year;
      parts.month = this.month;
      parts.day = this.day;
      parts.hour = this.hour;
      parts.minute = this.minute;
      parts.second = this.second;
      return start + length;
    }
    const after = this.readClock(text, start, end, parts);
    if (after >= 0 && after - start <= MEMO_CHARS) this.remember(text, start, after, parts);
    return after;
  }

  private remember(text: string, start: number, after: number, parts: DateParts): void {
    this.length = after - start;
    for (let k = 0; k < this.length; k++) this.codes[k] = text.charCodeAt(start + k);
    this.year = parts.year;
    this.month = parts.month;
    this.day = parts.day;
    this.hour = parts.hour;
    this.minute = parts.minute;
    this.second = parts.second;
  }
}

/** A stamp is followed by the host: one that runs on into other text was misread. */
function endsStamp(text: string, k: number, end: number): boolean {
  return k >= 0 && (k >= end || text.charCodeAt(k) === SPACE);
}

/** The built-in styles, dispatched on the first characters so that each line tries one style. */
function createBuiltinStamp(): StampParser {
  const iso = new ClockMemo(isoClockAt);
  const traditional = new ClockMemo(traditionalClockAt);
  const read = (text: string, start: number, end: number, parts: DateParts): number => {
    if (isDigitAt(text, start, end)) {
      if (text.charCodeAt(start + 4) !== 45) return epochAt(text, start, end, parts);
      const k = iso.clockAt(text, start, end, parts);
      return k < 0 ? -1 : isoTailAt(text, k, end, parts);
    }
    if (text.charCodeAt(start + 3) === SPACE && text.charCodeAt(start + 8) === 45) {
      return weekdayIsoAt(text, start, end, parts);
    }
    const k = traditional.clockAt(text, start, end, parts);
    return k < 0 ? -1 : fractionAt(text, k, end, parts);
  };
  return (text, start, end, parts) => {
    const k = read(text, start, end, parts);
    return endsStamp(text, k, end) ? k : -1;
  };
}

/** The stamp reader for PACKET_DROP_LOG_TIME_LAYOUT (a Go layout, tried first) and the built-in styles. */
export function createStampParser(layout: string | null): StampParser {
  const builtinStamp = createBuiltinStamp();
  if (layout === null) return builtinStamp;
  const custom = compileGoLayout(layout);
  return (text, start, end, parts) => {
    const k = custom(text, start, end, parts);
    if (endsStamp(text, k, end)) return k;
    parts.reset();
    return builtinStamp(text, start, end, parts);
  };
}
