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
