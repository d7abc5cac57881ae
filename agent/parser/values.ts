/**
 * Validators for the values that reach a PacketDrop. Every one of them ends up in Kubernetes Event
 * messages or logs, so each is held to the narrow character set the kernel actually prints.
 */

/** Linux IFNAMSIZ is 16 bytes including the terminating NUL. */
const MAX_INTERFACE_NAME = 15;
const MAX_HOST_NAME = 253;
/** 64 bytes of link-layer header, printed as `xx:` per byte. */
const MAX_MAC_TEXT = 64 * 3 - 1;

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

function isLetter(c: number): boolean {
  const lower = c | 0x20;
  return lower >= 97 && lower <= 122;
}

function isHexDigit(c: number): boolean {
  const lower = c | 0x20;
  return isDigit(c) || (lower >= 97 && lower <= 102);
}

/** Interface names: the kernel allows almost any byte, but real ones (eth0, cali1a2b, br-x.10) stay in this set. */
export function isInterfaceNameAt(text: string, start: number, end: number): boolean {
  if (end - start > MAX_INTERFACE_NAME) return false;
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i);
    if (!isLetter(c) && !isDigit(c) && c !== 95 && c !== 45 && c !== 46 && c !== 64 && c !== 43) return false;
  }
  return true;
}

/** Link-layer header as the kernel prints it: hex byte pairs joined by ':'. */
export function isMacAt(text: string, start: number, end: number): boolean {
  const length = end - start;
  if (length < 2 || length > MAX_MAC_TEXT || length % 3 !== 2) return false;
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i);
    if ((i - start) % 3 === 2 ? c !== 58 : !isHexDigit(c)) return false;
  }
  return true;
}

/** Host names, or the address a syslog daemon writes when it has no name (IPv6 included). */
export function isHostNameAt(text: string, start: number, end: number): boolean {
  if (end <= start || end - start > MAX_HOST_NAME) return false;
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i);
    if (!isLetter(c) && !isDigit(c) && c !== 45 && c !== 46 && c !== 95 && c !== 58) return false;
  }
  return true;
}

/**
 * What the kernel's LOG target and nftables' log print after PROTO= (nf_log_syslog.c): these names,
 * and the bare number of any other protocol. ICMP belongs to IPv4 and ICMPv6 to IPv6. Arrays, most
 * common first: a Map's iterator would cost an allocation per line.
 */
const NAMES_V4 = ['TCP', 'UDP', 'ICMP', 'UDPLITE', 'SCTP', 'ESP', 'AH'];
const NAMES_V6 = ['TCP', 'UDP', 'ICMPv6', 'UDPLITE', 'SCTP', 'ESP', 'AH'];
/** The numbers of the named protocols, which the kernel never prints as numbers. */
const NAMED_V4 = new Set([6, 17, 1, 136, 132, 50, 51]);
const NAMED_V6 = new Set([6, 17, 58, 136, 132, 50, 51]);
const LONGEST_PROTOCOL = 'UDPLITE'.length;
/** Every number token, so that a drop shares them instead of holding slices of the line. */
const NUMBERS = Array.from({ length: 256 }, (_, n) => String(n));

/** The protocol token at text[start, end) of an IPv4 or IPv6 packet, or null when the kernel would not print it. */
export function protocolAt(text: string, start: number, end: number, version: 4 | 6): string | null {
  const length = end - start;
  if (length < 1 || length > LONGEST_PROTOCOL) return null;
  if (!isDigit(text.charCodeAt(start))) {
    for (const name of version === 4 ? NAMES_V4 : NAMES_V6) {
      if (name.length === length && text.startsWith(name, start)) return name;
    }
    return null;
  }
  if (length > 3 || (text.charCodeAt(start) === 48 && length > 1)) return null;
  let value = 0;
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i);
    if (!isDigit(c)) return null;
    value = value * 10 + c - 48;
  }
  if (value > 255 || (version === 4 ? NAMED_V4 : NAMED_V6).has(value)) return null;
  return NUMBERS[value]!;
}

/**
 * A copy that shares no storage with the line. V8 makes substrings of 13+ characters views into their
 * parent, so a drop holding one would keep a whole read chunk alive. Only for validated ASCII values.
 */
export function detached(value: string): string {
  return Buffer.from(value, 'latin1').toString('latin1');
}

/** Characters hashed from the end of a value to pick its cache slot. */
const HASHED_TAIL = 8;

/**
 * Validated, canonical, detached values by their text on the line. Hosts, interfaces and addresses
 * repeat from line to line, so each distinct one is checked and copied once. The cache is
 * direct-mapped: a collision simply replaces the older entry, which bounds memory whatever the input.
 */
export class Interner {
  private readonly keys: string[];
  private readonly values: string[];
  private readonly mask: number;
  private readonly canonical: (raw: string) => string | null;

  constructor(canonical: (raw: string) => string | null, slots = 4096) {
    this.canonical = canonical;
    this.mask = slots - 1;
    this.keys = new Array<string>(slots).fill('');
    this.values = new Array<string>(slots).fill('');
  }

  /** The canonical form of text[start, end), or null when it is not valid. */
  at(text: string, start: number, end: number): string | null {
    // Empty slots hold '', which must not answer for an empty value.
    if (end <= start) return this.canonical('');
    // The tail tells repeated values apart (pod addresses, cali<hash> names, source MAC bytes); a
    // collision only costs a miss, since the full text is compared below.
    let hash = end - start;
    for (let i = Math.max(start, end - HASHED_TAIL); i < end; i++)
      hash = (Math.imul(hash, 31) + text.charCodeAt(i)) | 0;
    const slot = (hash ^ (hash >>> 13)) & this.mask;
    // A slice and === compare natively, faster than startsWith's character loop.
    const raw = text.slice(start, end);
    if (raw === this.keys[slot]) return this.values[slot]!;
    const value = this.canonical(raw);
    if (value === null) return null;
    const detachedKey = detached(raw);
    const detachedValue = value === raw ? detachedKey : detached(value);
    this.keys[slot] = detachedKey;
    this.values[slot] = detachedValue;
    return detachedValue;
  }
}

/** Adapts a span validator to Interner's whole-string form. */
export function validWhole(isValidAt: (text: string, start: number, end: number) => boolean) {
  return (raw: string): string | null => (isValidAt(raw, 0, raw.length) ? raw : null);
}

const IPV4_CACHE_SLOTS = 4096;

/**
 * Canonical IPv4 text by address value. Pod addresses repeat from line to line; keyed by the number
 * parsed during validation, a hit costs no string comparison, and each address is copied out of the
 * line once (see `detached`). Direct-mapped, so memory stays bounded.
 */
export class Ipv4Texts {
  private readonly values = new Float64Array(IPV4_CACHE_SLOTS).fill(-1);
  private readonly texts = new Array<string>(IPV4_CACHE_SLOTS).fill('');

  /** The text of text[start, end), whose value `value` the caller has parsed with ipv4ValueAt. */
  at(text: string, start: number, end: number, value: number): string {
    const slot = (value ^ (value >>> 12)) & (IPV4_CACHE_SLOTS - 1);
    if (this.values[slot] === value) return this.texts[slot]!;
    const copy = detached(text.slice(start, end));
    this.values[slot] = value;
    this.texts[slot] = copy;
    return copy;
  }
}
