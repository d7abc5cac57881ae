/**
 * IP address validation and canonical text. The kernel prints IPv6 in full eight-group form with
 * leading zeros while the Kubernetes API stores RFC 5952 short form, so both sides must meet in one
 * canonical spelling before pods can be matched.
 */

/** `ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255` is the longest valid IPv6 text without a zone. */
const MAX_IPV6_TEXT = 45;

/** Scratch for the one IPv6 parse in progress: parsing is synchronous, so sharing it is safe. */
const groups = new Uint16Array(8);

/**
 * The 32-bit value of the dotted quad in text[start, end), or -1. Leading zeros are rejected:
 * inet_aton would read `010.0.0.1` as octal, so such text has no single meaning.
 */
export function ipv4ValueAt(text: string, start: number, end: number): number {
  let dots = 0;
  let digits = 0;
  let octet = 0;
  let value = 0;
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c === 46) {
      if (digits === 0 || dots === 3) return -1;
      dots++;
      value = value * 256 + octet;
      digits = 0;
      octet = 0;
      continue;
    }
    const d = c - 48;
    if (d < 0 || d > 9 || (digits > 0 && octet === 0)) return -1;
    octet = octet * 10 + d;
    if (octet > 255) return -1;
    digits++;
  }
  return dots === 3 && digits > 0 ? value * 256 + octet : -1;
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  const lower = c | 0x20;
  if (lower >= 97 && lower <= 102) return lower - 87;
  return -1;
}

/** Moves the groups after a `::` to the end and zero-fills the gap. */
function expandGap(count: number, gap: number): void {
  const tail = count - gap;
  for (let k = 1; k <= tail; k++) groups[8 - k] = groups[count - k]!;
  for (let k = gap; k < 8 - tail; k++) groups[k] = 0;
}

/** RFC 4291 text (full, `::`-compressed, or with a dotted-quad tail) into `groups`; no zone ids. */
function parseIpv6(text: string, start: number, end: number): boolean {
  if (end - start < 2 || end - start > MAX_IPV6_TEXT) return false;
  let count = 0;
  let gap = -1;
  let i = start;
  if (text.charCodeAt(i) === 58) {
    if (text.charCodeAt(i + 1) !== 58) return false;
    gap = 0;
    i += 2;
  }
  while (i < end) {
    let value = 0;
    let j = i;
    for (
      let v = hexValue(text.charCodeAt(j));
      v >= 0 && j - i < 4 && j < end;
      v = hexValue(text.charCodeAt(j))
    ) {
      value = (value << 4) | v;
      j++;
    }
    if (j < end && text.charCodeAt(j) === 46) {
      const ipv4 = ipv4ValueAt(text, i, end);
      if (count > 6 || ipv4 < 0) return false;
      groups[count++] = ipv4 >>> 16;
      groups[count++] = ipv4 & 0xffff;
      break;
    }
    if (j === i || count === 8) return false;
    groups[count++] = value;
    if (j === end) break;
    if (text.charCodeAt(j) !== 58) return false;
    j++;
    if (text.charCodeAt(j) === 58 && j < end) {
      if (gap >= 0) return false;
      gap = count;
      j++;
    } else if (j === end) {
      return false;
    }
    i = j;
  }
  if (gap < 0) return count === 8;
  if (count > 7) return false;
  expandGap(count, gap);
  return true;
}

/** The longest run of two or more zero groups, the first one on a tie (RFC 5952 section 4.2). */
function longestZeroRun(): { at: number; length: number } {
  let best = { at: -1, length: 1 };
  let k = 0;
  while (k < 8) {
    if (groups[k] !== 0) {
      k++;
      continue;
    }
    const at = k;
    while (k < 8 && groups[k] === 0) k++;
    if (k - at > best.length) best = { at, length: k - at };
  }
  return best;
}

function formatGroups(from: number, to: number): string {
  const parts: string[] = [];
  for (let k = from; k < to; k++) parts.push(groups[k]!.toString(16));
  return parts.join(':');
}

/** RFC 5952: lowercase, no leading zeros, `::` for the longest zero run, mixed notation if IPv4-mapped. */
function formatIpv6(): string {
  if (groups[0] === 0 && groups[1] === 0 && groups[2] === 0 && groups[3] === 0 && groups[4] === 0) {
    if (groups[5] === 0xffff) {
      const g6 = groups[6]!;
      const g7 = groups[7]!;
      return `::ffff:${g6 >> 8}.${g6 & 0xff}.${g7 >> 8}.${g7 & 0xff}`;
    }
  }
  const run = longestZeroRun();
  if (run.at < 0) return formatGroups(0, 8);
  return `${formatGroups(0, run.at)}::${formatGroups(run.at + run.length, 8)}`;
}

/** Canonical text of an address, or null when it is not a valid IPv4/IPv6 address (no zone ids). */
export function canonicalIp(text: string): string | null {
  if (ipv4ValueAt(text, 0, text.length) >= 0) return text;
  return parseIpv6(text, 0, text.length) ? formatIpv6() : null;
}

/** Version of an address already in canonical form. */
export function ipVersion(canonical: string): 4 | 6 {
  return canonical.includes(':') ? 6 : 4;
}
