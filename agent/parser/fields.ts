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
const OPEN_BRACKET = 91;
/** Stored in `numbers` for a numeric field whose value is not a plain decimal number. */
export const MALFORMED = -2;
/** More digits than any accepted maximum (2^32 - 1) has. */
const MAX_DIGITS = 10;
/** Slots whose value is a decimal number, parsed during the scan. */
const NUMERIC = FIELD_NAMES.map((name) => ['LEN', 'TTL', 'SPT', 'DPT', 'TYPE', 'CODE'].includes(name));

/** The fields found on one line, reused from line to line. */
export class FieldScan {
  /** [start, end) of each field's value at slot*2 and slot*2+1; start -1 when the field is absent. */
  readonly spans: Spans = new Int32Array(FIELD_NAMES.length * 2);
  /** Numeric fields' values; -1 when absent, MALFORMED when not a number. */
  readonly numbers = new Float64Array(FIELD_NAMES.length);
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
const EQUALS = 61;
const IN_ = pack('IN= ') & THREE_CHARS;
const OUT_ = pack('OUT=');
const MAC_ = pack('MAC=');
const SRC_ = pack('SRC=');
const SPT_ = pack('SPT=');
const DST_ = pack('DST=');
const DPT_ = pack('DPT=');
const LEN_ = pack('LEN=');
const TTL_ = pack('TTL=');
const TYPE = pack('TYPE');
const CODE = pack('CODE');
const PROT = pack('PROT');
const HOPL = pack('HOPL');
const IMIT = pack('IMIT');

/** Slot of the key at i plus its length (with '=') times 16, or -1 for keys nobody reads. */
function keyAt(text: string, i: number): number {
  const word = wordAt(text, i);
  switch (word) {
    case OUT_:
      return Field.OUT | (4 << 4);
    case MAC_:
      return Field.MAC | (4 << 4);
    case SRC_:
      return Field.SRC | (4 << 4);
    case SPT_:
      return Field.SPT | (4 << 4);
    case DST_:
      return Field.DST | (4 << 4);
    case DPT_:
      return Field.DPT | (4 << 4);
    case LEN_:
      return Field.LEN | (4 << 4);
    case TTL_:
      return Field.TTL | (4 << 4);
    case TYPE:
      return text.charCodeAt(i + 4) === EQUALS ? Field.TYPE | (5 << 4) : -1;
    case CODE:
      return text.charCodeAt(i + 4) === EQUALS ? Field.CODE | (5 << 4) : -1;
    case PROT:
      return text.charCodeAt(i + 4) === 79 && text.charCodeAt(i + 5) === EQUALS ? Field.PROTO | (6 << 4) : -1;
    case HOPL:
      return wordAt(text, i + 4) === IMIT && text.charCodeAt(i + 8) === EQUALS ? Field.TTL | (9 << 4) : -1;
    default:
      return (word & THREE_CHARS) === IN_ ? Field.IN | (3 << 4) : -1;
  }
}

/** Native indexOf: a quarter faster than a charCodeAt loop over a line's tokens. */
function tokenEndAt(text: string, i: number, end: number): number {
  const space = text.indexOf(' ', i);
  return space < 0 || space > end ? end : space;
}

/** Parses the decimal value at i into numbers[slot]; returns the end of the token. */
function numberAt(text: string, i: number, end: number, numbers: Float64Array, slot: number): number {
  let value = 0;
  let j = i;
  for (; j < end; j++) {
    const digit = text.charCodeAt(j) - 48;
    if (digit < 0 || digit > 9) break;
    value = value * 10 + digit;
  }
  const wellFormed = j > i && j - i <= MAX_DIGITS && (j === end || text.charCodeAt(j) === SPACE);
  numbers[slot] = wellFormed ? value : MALFORMED;
  return wellFormed ? j : tokenEndAt(text, j, end);
}

/** Whether the scan has what any drop needs: ports end TCP/UDP headers, CODE= ends ICMP's. */
function complete(spans: Spans): boolean {
  return has(spans, Field.PROTO) && (has(spans, Field.DPT) || has(spans, Field.CODE));
}

/**
 * Records the FIRST occurrence of each field in text[start, end): the IP header's LEN= and ID= come
 * before UDP's LEN= and ICMP's ID=. Stops at '[', where the kernel nests the packet quoted by an ICMP
 * error (its SRC=, DST= and ports are not this packet's), and once nothing more is needed. Flags
 * without '=' (DF, SYN) are tokens like any other.
 */
export function scanFields(text: string, start: number, end: number, scan: FieldScan): void {
  const { spans, numbers } = scan;
  // Plain loops: TypedArray.prototype.fill costs a builtin call each, per line.
  for (let k = 0; k < spans.length; k++) spans[k] = -1;
  for (let k = 0; k < numbers.length; k++) numbers[k] = -1;
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
      ? numberAt(text, valueStart, end, numbers, slot)
      : tokenEndAt(text, valueStart, end);
    spans[slot * 2] = valueStart;
    spans[slot * 2 + 1] = valueEnd;
    if (complete(spans)) return;
    i = valueEnd + 1;
  }
}
