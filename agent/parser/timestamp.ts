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

/** RFC 3339 and journalctl short-iso(-precise); a space may stand for the `T`. */
function isoAt(text: string, i: number, end: number, parts: DateParts): number {
  let k = dateAt(text, i, end, parts);
  if (k < 0) return -1;
  const separator = text.charCodeAt(k);
  if (separator !== 84 && separator !== 116 && separator !== SPACE) return -1;
  k = clockAt(text, k + 1, end, parts);
  if (k < 0) return -1;
  k = fractionAt(text, k, end, parts);
  return k < 0 ? -1 : offsetAt(text, k, end, parts);
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

/** Traditional syslog and journalctl short(-precise): `Apr  5 20:41:42`, `Apr 05 20:41:42.123456`. */
function traditionalAt(text: string, i: number, end: number, parts: DateParts): number {
  let k = monthNameAt(text, i, end, parts, false);
  if (k < 0 || text.charCodeAt(k) !== SPACE) return -1;
  k++;
  if (text.charCodeAt(k) === SPACE) k++;
  if (!isDigitAt(text, k, end)) return -1;
  const twoDigits = isDigitAt(text, k + 1, end);
  parts.day = twoDigits ? digitsAt(text, k, 2, end) : text.charCodeAt(k) - 48;
  k += twoDigits ? 2 : 1;
  if (text.charCodeAt(k) !== SPACE) return -1;
  k = clockAt(text, k + 1, end, parts);
  return k < 0 ? -1 : fractionAt(text, k, end, parts);
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

/** Dispatches on the first characters, so each line tries one style. */
function builtinStampAt(text: string, start: number, end: number, parts: DateParts): number {
  if (isDigitAt(text, start, end)) {
    return text.charCodeAt(start + 4) === 45
      ? isoAt(text, start, end, parts)
      : epochAt(text, start, end, parts);
  }
  if (text.charCodeAt(start + 3) === SPACE && text.charCodeAt(start + 8) === 45) {
    return weekdayIsoAt(text, start, end, parts);
  }
  return traditionalAt(text, start, end, parts);
}

/** A stamp is followed by the host: one that runs on into other text was misread. */
function endsStamp(text: string, k: number, end: number): boolean {
  return k >= 0 && (k >= end || text.charCodeAt(k) === SPACE);
}

function builtinStamp(text: string, start: number, end: number, parts: DateParts): number {
  const k = builtinStampAt(text, start, end, parts);
  return endsStamp(text, k, end) ? k : -1;
}

/** The stamp reader for PACKET_DROP_LOG_TIME_LAYOUT (a Go layout, tried first) and the built-in styles. */
export function createStampParser(layout: string | null): StampParser {
  if (layout === null) return builtinStamp;
  const custom = compileGoLayout(layout);
  return (text, start, end, parts) => {
    const k = custom(text, start, end, parts);
    if (endsStamp(text, k, end)) return k;
    parts.reset();
    return builtinStamp(text, start, end, parts);
  };
}
