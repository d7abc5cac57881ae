/**
 * Go reference layouts (`2006-01-02T15:04:05.000000-07:00`), as box/kube-iptables-tailer took them in
 * PACKET_DROP_LOG_TIME_LAYOUT. The layout is compiled once into chunks; parsing follows Go's
 * time.Parse: unpadded fields take one or two digits, a space matches a run of spaces, and a fraction
 * may follow the seconds even when the layout has none.
 */

import {
  type DateParts,
  digitsAt,
  fractionAt,
  monthNameAt,
  offsetAt,
  type StampParser,
  shortNumberAt,
  weekdayAt,
  zoneNameAt,
} from './dates.ts';

type NumberField = 'month' | 'day' | 'hour' | 'minute' | 'second';

type Chunk =
  | { kind: 'literal'; text: string }
  /** `padded` fields take exactly two digits; `underscore` (`_2`) allows a space for the tens. */
  | { kind: 'number'; field: NumberField; padded: boolean; underscore: boolean }
  | { kind: 'year'; digits: 2 | 4 }
  | { kind: 'monthName'; long: boolean }
  | { kind: 'weekday'; long: boolean }
  | { kind: 'meridiem'; upper: boolean }
  | { kind: 'zoneName' }
  | { kind: 'offset'; allowZ: boolean }
  /** digits 0 is `.999...`: optional, any number of digits. */
  | { kind: 'fraction'; digits: number };

function numberChunk(field: NumberField, padded: boolean, underscore = false): Chunk {
  return { kind: 'number', field, padded, underscore };
}

/** Go's std tokens, longest first where one starts another (nextStdChunk's order). */
const STD_TOKENS: readonly (readonly [string, readonly Chunk[]])[] = [
  ['January', [{ kind: 'monthName', long: true }]],
  ['Jan', [{ kind: 'monthName', long: false }]],
  ['Monday', [{ kind: 'weekday', long: true }]],
  ['Mon', [{ kind: 'weekday', long: false }]],
  ['MST', [{ kind: 'zoneName' }]],
  ['01', [numberChunk('month', true)]],
  ['02', [numberChunk('day', true)]],
  ['03', [numberChunk('hour', true)]],
  ['04', [numberChunk('minute', true)]],
  ['05', [numberChunk('second', true)]],
  ['06', [{ kind: 'year', digits: 2 }]],
  ['15', [numberChunk('hour', false)]],
  ['1', [numberChunk('month', false)]],
  ['2006', [{ kind: 'year', digits: 4 }]],
  ['2', [numberChunk('day', false)]],
  [
    '_2006',
    [
      { kind: 'literal', text: '_' },
      { kind: 'year', digits: 4 },
    ],
  ],
  ['_2', [numberChunk('day', false, true)]],
  ['3', [numberChunk('hour', false)]],
  ['4', [numberChunk('minute', false)]],
  ['5', [numberChunk('second', false)]],
  ['PM', [{ kind: 'meridiem', upper: true }]],
  ['pm', [{ kind: 'meridiem', upper: false }]],
  ['-07:00', [{ kind: 'offset', allowZ: false }]],
  ['-0700', [{ kind: 'offset', allowZ: false }]],
  ['-07', [{ kind: 'offset', allowZ: false }]],
  ['Z07:00', [{ kind: 'offset', allowZ: true }]],
  ['Z0700', [{ kind: 'offset', allowZ: true }]],
  ['Z07', [{ kind: 'offset', allowZ: true }]],
];

function isDigitCode(c: number): boolean {
  return c >= 48 && c <= 57;
}

/** `.000`, `,000` or `.999` at i: Go's fraction token (a run of one digit, not followed by another digit). */
function fractionTokenLength(layout: string, i: number): number {
  const separator = layout.charCodeAt(i);
  const digit = layout.charCodeAt(i + 1);
  if ((separator !== 46 && separator !== 44) || (digit !== 48 && digit !== 57)) return 0;
  let k = i + 1;
  while (layout.charCodeAt(k) === digit) k++;
  return isDigitCode(layout.charCodeAt(k)) ? 0 : k - i;
}

function appendLiteral(chunks: Chunk[], char: string): void {
  const last = chunks.at(-1);
  if (last?.kind === 'literal') last.text += char;
  else chunks.push({ kind: 'literal', text: char });
}

function tokenize(layout: string): Chunk[] {
  const chunks: Chunk[] = [];
  let i = 0;
  while (i < layout.length) {
    const fraction = fractionTokenLength(layout, i);
    if (fraction > 0) {
      const nines = layout.charCodeAt(i + 1) === 57;
      chunks.push({ kind: 'fraction', digits: nines ? 0 : fraction - 1 });
      i += fraction;
      continue;
    }
    const std = STD_TOKENS.find(([token]) => layout.startsWith(token, i));
    if (std === undefined) {
      appendLiteral(chunks, layout[i]!);
      i++;
      continue;
    }
    for (const chunk of std[1]) {
      if (chunk.kind === 'literal') appendLiteral(chunks, chunk.text);
      else chunks.push(chunk);
    }
    i += std[0].length;
  }
  return chunks;
}

/** Go's skip(): literal text, where a space in the layout matches one or more spaces. */
function literalAt(text: string, i: number, end: number, literal: string): number {
  let k = i;
  let j = 0;
  while (j < literal.length) {
    if (literal.charCodeAt(j) === 32) {
      if (k < end && text.charCodeAt(k) !== 32) return -1;
      while (literal.charCodeAt(j) === 32) j++;
      while (k < end && text.charCodeAt(k) === 32) k++;
      continue;
    }
    if (k >= end || text.charCodeAt(k) !== literal.charCodeAt(j)) return -1;
    j++;
    k++;
  }
  return k;
}

function numberAt(
  chunk: Chunk & { kind: 'number' },
  text: string,
  i: number,
  end: number,
  parts: DateParts,
): number {
  const k = chunk.underscore && text.charCodeAt(i) === 32 ? i + 1 : i;
  if (chunk.padded) {
    const value = digitsAt(text, k, 2, end);
    if (value < 0) return -1;
    parts[chunk.field] = value;
    return k + 2;
  }
  const read = shortNumberAt(text, k, end);
  if (read === null) return -1;
  parts[chunk.field] = read.value;
  return read.next;
}

function yearAt(digits: 2 | 4, text: string, i: number, end: number, parts: DateParts): number {
  const value = digitsAt(text, i, digits, end);
  if (value < 0) return -1;
  // Go's two-digit years: 69-99 are 1969-1999, 00-68 are 2000-2068.
  parts.year = digits === 4 ? value : value >= 69 ? 1900 + value : 2000 + value;
  return i + digits;
}

function offsetChunkAt(allowZ: boolean, text: string, i: number, end: number, parts: DateParts): number {
  const c = text.charCodeAt(i);
  if (c === 90 ? !allowZ : c !== 43 && c !== 45) return -1;
  return offsetAt(text, i, end, parts);
}

function fractionChunkAt(digits: number, text: string, i: number, end: number, parts: DateParts): number {
  if (digits === 0) return fractionAt(text, i, end, parts);
  const c = text.charCodeAt(i);
  if ((c !== 46 && c !== 44) || digitsAt(text, i + 1, digits, end) < 0) return -1;
  return fractionAt(text, i, i + 1 + digits, parts);
}

/** Reads one chunk (meridiem aside: it changes the hour only once the whole stamp is read); returns the index after it, or -1. */
function chunkAt(
  chunk: Exclude<Chunk, { kind: 'meridiem' }>,
  text: string,
  i: number,
  end: number,
  parts: DateParts,
): number {
  switch (chunk.kind) {
    case 'literal':
      return literalAt(text, i, end, chunk.text);
    case 'number':
      return numberAt(chunk, text, i, end, parts);
    case 'year':
      return yearAt(chunk.digits, text, i, end, parts);
    case 'monthName':
      return monthNameAt(text, i, end, parts, chunk.long);
    case 'weekday':
      return weekdayAt(text, i, end, chunk.long);
    case 'zoneName':
      return zoneNameAt(text, i, end, parts);
    case 'offset':
      return offsetChunkAt(chunk.allowZ, text, i, end, parts);
    case 'fraction':
      return fractionChunkAt(chunk.digits, text, i, end, parts);
  }
}

/** `PM`/`AM` (or lowercase) at i: 1 for PM, 0 for AM, -1 for neither. */
function meridiemAt(upper: boolean, text: string, i: number): number {
  const first = text.charCodeAt(i);
  if (text.charCodeAt(i + 1) !== (upper ? 77 : 109)) return -1;
  if (first === (upper ? 80 : 112)) return 1;
  return first === (upper ? 65 : 97) ? 0 : -1;
}

/** Go's 12-hour clock: 12 AM is midnight, PM adds twelve hours. */
function applyMeridiem(pm: number, parts: DateParts): void {
  if (pm === 1 && parts.hour < 12) parts.hour += 12;
  else if (pm === 0 && parts.hour === 12) parts.hour = 0;
}

function isSecondChunk(chunk: Chunk): boolean {
  return chunk.kind === 'number' && chunk.field === 'second';
}

export function compileGoLayout(layout: string): StampParser {
  const chunks = tokenize(layout);
  return (text, start, end, parts) => {
    let k = start;
    let pm = -1;
    for (let n = 0; n < chunks.length; n++) {
      const chunk = chunks[n]!;
      if (chunk.kind === 'meridiem') {
        pm = meridiemAt(chunk.upper, text, k);
        if (pm < 0) return -1;
        k += 2;
        continue;
      }
      k = chunkAt(chunk, text, k, end, parts);
      if (k < 0) return -1;
      if (isSecondChunk(chunk) && chunks[n + 1]?.kind !== 'fraction') k = fractionAt(text, k, end, parts);
      if (k < 0) return -1;
    }
    applyMeridiem(pm, parts);
    return k;
  };
}
