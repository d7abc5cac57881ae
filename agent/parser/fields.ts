/**
 * Scanning of the kernel's `KEY=value` fields in one pass of charCodeAt: values are recorded as spans
 * into the line rather than strings, and numbers are parsed on the way.
 */

/** Slot of each field in a Spans array; TTL= (IPv4) and HOPLIMIT= (IPv6) share one. */
export const Field = {
  IN: 0,
  OUT: 1,
  MAC: 2,
  SRC: 3,
  DST: 4,
  LEN: 5,
  TTL: 6,
  PROTO: 7,
  SPT: 8,
  DPT: 9,
  TYPE: 10,
  CODE: 11,
} as const;
export type Field = (typeof Field)[keyof typeof Field];

/** Field names for messages, by slot. */
export const FIELD_NAMES = [
  'IN',
  'OUT',
  'MAC',
  'SRC',
  'DST',
  'LEN',
  'TTL',
  'PROTO',
  'SPT',
  'DPT',
  'TYPE',
  'CODE',
];

/** [start, end) of each field's value at slot*2 and slot*2+1; start -1 when the field is absent. */
export type Spans = Int32Array;

export function has(spans: Spans, field: Field): boolean {
  return spans[field * 2]! >= 0;
}

export function startOf(spans: Spans, field: Field): number {
  return spans[field * 2]!;
}

export function endOf(spans: Spans, field: Field): number {
  return spans[field * 2 + 1]!;
}

const SPACE = 32;
const ZERO = 48;
const OPEN_BRACKET = 91;
/** Stored in `numbers` for a numeric field whose value is not a plain decimal number. */
export const MALFORMED = -2;
/** More digits than any accepted maximum (2^32 - 1) has. */
const MAX_DIGITS = 10;
/** Largest accepted value of each numeric field by slot, 0 for the others; LEN= of IPv6 jumbograms needs 32 bits. */
export const NUMBER_LIMITS = FIELD_NAMES.map(
  (name) => ({ LEN: 0xffff_ffff, TTL: 255, SPT: 65_535, DPT: 65_535, TYPE: 255, CODE: 255 })[name] ?? 0,
);
/** Slots whose value is a decimal number, parsed during the scan. */
const NUMERIC = NUMBER_LIMITS.map((limit) => limit > 0);

/** The fields found on one line, reused from line to line. */
export class FieldScan {
  /** [start, end) of each field's value at slot*2 and slot*2+1; start -1 when the field is absent. */
  readonly spans: Spans = new Int32Array(FIELD_NAMES.length * 2);
  /** Numeric fields' values; -1 when absent, MALFORMED when not a number. */
  readonly numbers = new Float64Array(FIELD_NAMES.length);
  /** False when some numeric field is malformed or over its limit: only then need they be looked at one by one. */
  numbersValid = true;
}

/** Four characters packed into one number, so that a key is recognised with one comparison. */
function pack(key: string): number {
  return key.charCodeAt(0) | (key.charCodeAt(1) << 8) | (key.charCodeAt(2) << 16) | (key.charCodeAt(3) << 24);
}

/** The four characters at i, packed like `pack` (past the end of the text they count as 0). */
function wordAt(text: string, i: number): number {
  return (
    text.charCodeAt(i) |
    (text.charCodeAt(i + 1) << 8) |
    (text.charCodeAt(i + 2) << 16) |
    (text.charCodeAt(i + 3) << 24)
  );
}

const THREE_CHARS = 0xff_ffff;
const IN_ = pack('IN= ') & THREE_CHARS;

/**
 * The keys read, by their first four characters, in a perfect hash of 16 slots: any token costs one
 * multiplication and one comparison to recognise, where a switch compared it with every key in turn.
 * The multiplier was searched for as the first odd one that gives these twelve keys slots of their own.
 */
const KEY_HASH = 438_557;
const KEYS: readonly [key: string, field: Field][] = [
  ['OUT=', Field.OUT],
  ['MAC=', Field.MAC],
  ['SRC=', Field.SRC],
  ['DST=', Field.DST],
  ['LEN=', Field.LEN],
  ['TTL=', Field.TTL],
  ['HOPLIMIT=', Field.TTL],
  ['PROTO=', Field.PROTO],
  ['SPT=', Field.SPT],
  ['DPT=', Field.DPT],
  ['TYPE=', Field.TYPE],
  ['CODE=', Field.CODE],
];
const hashSlot = (word: number): number => Math.imul(word, KEY_HASH) >>> 28;
/** Per hash slot: the key's first four characters packed, the rest of the key, and its slot | length << 4. */
const KEY_WORDS = new Int32Array(16);
const KEY_TAILS = new Array<string>(16).fill('');
const KEY_INFO = new Int32Array(16).fill(-1);
for (const [key, field] of KEYS) {
  const slot = hashSlot(pack(key));
  if (KEY_INFO[slot] !== -1) throw new Error(`KEY_HASH gives ${key} a taken slot`);
  KEY_WORDS[slot] = pack(key);
  KEY_TAILS[slot] = key.slice(4);
  KEY_INFO[slot] = field | (key.length << 4);
}

/** Slot of the key at i plus its length (with '=') times 16, or -1 for keys nobody reads. */
function keyAt(text: string, i: number): number {
  const word = wordAt(text, i);
  const slot = hashSlot(word);
  const info = KEY_INFO[slot]!;
  if (info < 0 || KEY_WORDS[slot] !== word) return (word & THREE_CHARS) === IN_ ? Field.IN | (3 << 4) : -1;
  const tail = KEY_TAILS[slot]!;
  for (let k = 0; k < tail.length; k++) {
    if (text.charCodeAt(i + 4 + k) !== tail.charCodeAt(k)) return -1;
  }
  return info;
}

/** Native indexOf: a quarter faster than a charCodeAt loop over a line's tokens. */
function tokenEndAt(text: string, i: number, end: number): number {
  const space = text.indexOf(' ', i);
  return space < 0 || space > end ? end : space;
}

/** Parses the decimal value at i into the scan's numbers[slot]; returns the end of the token. */
function numberAt(text: string, i: number, end: number, scan: FieldScan, slot: number): number {
  let value = 0;
  let j = i;
  for (; j < end; j++) {
    const digit = text.charCodeAt(j) - 48;
    if (digit < 0 || digit > 9) break;
    value = value * 10 + digit;
  }
  // One rule for every number, as for address octets: no sign, no leading zero but "0" itself, and the
  // token ends with the digits (a NUL or control character after them is no number).
  const wellFormed =
    j > i &&
    j - i <= MAX_DIGITS &&
    (text.charCodeAt(i) !== ZERO || j === i + 1) &&
    (j === end || text.charCodeAt(j) === SPACE);
  scan.numbers[slot] = wellFormed ? value : MALFORMED;
  if (!wellFormed || value > NUMBER_LIMITS[slot]!) scan.numbersValid = false;
  return wellFormed ? j : tokenEndAt(text, j, end);
}

const bit = (field: Field): number => 1 << field;
/** Fields after which nothing more is read once all are found: the rest of a kernel line is not ours. */
const EVERY_HEADER_FIELD = [
  Field.IN,
  Field.OUT,
  Field.MAC,
  Field.SRC,
  Field.DST,
  Field.LEN,
  Field.TTL,
  Field.PROTO,
]
  .map(bit)
  .reduce((a, b) => a | b);
const PORTS = bit(Field.SPT) | bit(Field.DPT);
const ICMP_TYPE_CODE = bit(Field.TYPE) | bit(Field.CODE);

/** Whether every field a line can have has been found: ports end TCP/UDP headers, CODE= ends ICMP's. */
function complete(found: number): boolean {
  return (
    (found & EVERY_HEADER_FIELD) === EVERY_HEADER_FIELD &&
    ((found & PORTS) === PORTS || (found & ICMP_TYPE_CODE) === ICMP_TYPE_CODE)
  );
}

/**
 * Records the FIRST occurrence of each field in text[start, end), wherever it stands (other loggers
 * print the kernel's fields in another order): the IP header's LEN= comes before UDP's LEN=. Stops at
 * '[', where the kernel nests the packet quoted by an ICMP error (its SRC=, DST= and ports are not this
 * packet's), and once every field is found. Flags without '=' (DF, SYN) are tokens like any other.
 */
export function scanFields(text: string, start: number, end: number, scan: FieldScan): void {
  const { spans, numbers } = scan;
  // Plain loops: TypedArray.prototype.fill costs a builtin call each, per line.
  for (let k = 0; k < spans.length; k++) spans[k] = -1;
  for (let k = 0; k < numbers.length; k++) numbers[k] = -1;
  scan.numbersValid = true;
  let found = 0;
  let i = start;
  while (i < end) {
    const c = text.charCodeAt(i);
    if (c === SPACE) {
      i++;
      continue;
    }
    if (c === OPEN_BRACKET) return;
    const key = keyAt(text, i);
    const slot = key & 15;
    if (key < 0 || spans[slot * 2]! >= 0) {
      i = tokenEndAt(text, i, end) + 1;
      continue;
    }
    const valueStart = i + (key >> 4);
    const valueEnd = NUMERIC[slot]
      ? numberAt(text, valueStart, end, scan, slot)
      : tokenEndAt(text, valueStart, end);
    spans[slot * 2] = valueStart;
    spans[slot * 2 + 1] = valueEnd;
    found |= 1 << slot;
    if (complete(found)) return;
    i = valueEnd + 1;
  }
}
