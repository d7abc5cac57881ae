/**
 * The header of a syslog-style line: `<stamp> <host> `, then usually `kernel:` and a `[ uptime]` stamp,
 * which need no parsing because the prefix is searched for after the host.
 */

import type { DateParts, StampParser } from './dates.ts';

const SPACE = 32;
const COLON = 58;

/** Where the host name is in the line; start === end when the line has none. */
export class HostSpan {
  start = 0;
  end = 0;
}

/**
 * Reads the stamp into parts and finds the host; returns the index where the prefix search starts,
 * or -1 when the line does not begin with a timestamp.
 */
export function headerAt(
  text: string,
  start: number,
  end: number,
  stamp: StampParser,
  parts: DateParts,
  host: HostSpan,
): number {
  parts.reset();
  let k = stamp(text, start, end, parts);
  if (k < 0) return -1;
  while (k < end && text.charCodeAt(k) === SPACE) k++;
  const space = text.indexOf(' ', k);
  const tokenEnd = space < 0 || space > end ? end : space;
  // A token ending in ':' is the syslog tag (`kernel:`): the daemon wrote no host.
  if (tokenEnd === k || text.charCodeAt(tokenEnd - 1) === COLON) {
    host.start = host.end = k;
    return k;
  }
  host.start = k;
  host.end = tokenEnd;
  return tokenEnd;
}

const OPEN_BRACKET = 91;
const CLOSE_BRACKET = 93;
/** RFC 3164 caps the tag at 32 characters; a longer token ending in ':' is message text. */
const MAX_TAG = 48;

function isTagChar(c: number): boolean {
  const lower = c | 0x20;
  return (
    (lower >= 97 && lower <= 122) || (c >= 48 && c <= 57) || c === 45 || c === 46 || c === 95 || c === 47
  );
}

/**
 * The end (after the ':') of the syslog tag at text[start, end), `name:` or `name[pid]:`, or -1 when
 * the token there is none.
 */
export function tagEndAt(text: string, start: number, end: number): number {
  let k = start;
  while (k < end && k - start < MAX_TAG && isTagChar(text.charCodeAt(k))) k++;
  if (k === start) return -1;
  if (text.charCodeAt(k) === OPEN_BRACKET) {
    const digits = k + 1;
    k = digits;
    while (k < end && k - digits < 10 && text.charCodeAt(k) >= 48 && text.charCodeAt(k) <= 57) k++;
    if (k === digits || text.charCodeAt(k) !== CLOSE_BRACKET) return -1;
    k++;
  }
  if (k >= end || text.charCodeAt(k) !== COLON) return -1;
  k++;
  return k === end || text.charCodeAt(k) === SPACE ? k : -1;
}
