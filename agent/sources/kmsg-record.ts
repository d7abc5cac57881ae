/**
 * One record of the kernel's /dev/kmsg, as one read(2) returns it (Documentation/ABI/testing/dev-kmsg):
 *
 *   priority,sequence,timestamp_us,flags[,more fields];message\n
 *    KEY=value\n            (dictionary lines, each begun by a space, after the message)
 *
 * The kernel escapes every byte of the message and the dictionary below 0x20, from 0x7f, and `\` itself as
 * `\xNN`, so a record is printable ASCII and one message never spans lines. Pure functions: the source reads,
 * these only take records apart.
 */

import type { LogRecord } from '../types.ts';

/** syslog's facility of the kernel itself: what user space writes to /dev/kmsg never gets it. */
export const KERNEL_FACILITY = 0;

export interface KmsgRecord {
  /** The syslog facility (priority >> 3): 0 the kernel, 1 (user) for what a process wrote to /dev/kmsg. */
  facility: number;
  /** The level, 0 (emerg) to 7 (debug). */
  level: number;
  sequence: number;
  /** The kernel's clock when it was logged: microseconds since boot, suspended time not counted. */
  timestampUs: number;
  /** `-`, or `c` for the first fragment of a message continued later, `+` for a continuation (older kernels). */
  flag: string;
  /** Unescaped, decoded as UTF-8. */
  message: string;
  /** The dictionary lines (SUBSYSTEM=, DEVICE=, ...), unescaped. */
  dictionary: ReadonlyMap<string, string>;
}

export const KMSG_MALFORMED = [
  'no_header',
  'bad_priority',
  'bad_sequence',
  'bad_timestamp',
  'bad_flag',
  'bad_dictionary',
] as const;
export type KmsgMalformed = (typeof KMSG_MALFORMED)[number];

export type KmsgParse = { kind: 'record'; record: KmsgRecord } | { kind: 'malformed'; reason: KmsgMalformed };

const DECIMAL = /^[0-9]{1,20}$/;
const FLAGS = new Set(['-', 'c', '+']);
const BACKSLASH = 0x5c;
const NEWLINE = '\n';
const EMPTY: ReadonlyMap<string, string> = new Map();

function malformed(reason: KmsgMalformed): KmsgParse {
  return { kind: 'malformed', reason };
}

/** A field of decimal digits as a safe integer; null for anything else (sign, blanks, 2^53 and more). */
function decimal(text: string): number | null {
  if (!DECIMAL.test(text)) return null;
  const value = Number(text);
  return Number.isSafeInteger(value) ? value : null;
}

function hexDigit(byte: number): number {
  if (byte >= 0x30 && byte <= 0x39) return byte - 0x30;
  const lower = byte | 0x20;
  if (lower >= 0x61 && lower <= 0x66) return lower - 0x61 + 10;
  return -1;
}

/**
 * The text with each `\xNN` turned back into its byte, then decoded as UTF-8 (the kernel escapes each byte of
 * a multi-byte character on its own). A backslash not followed by two hex digits stays as it is.
 */
export function unescapeKmsg(text: string): string {
  if (!text.includes('\\') && !/[\u0080-\u00ff]/.test(text)) return text;
  const bytes = Buffer.from(text, 'latin1');
  let out = 0;
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i]!;
    if (byte === BACKSLASH && bytes[i + 1] === 0x78 && i + 3 < bytes.length) {
      const high = hexDigit(bytes[i + 2]!);
      const low = hexDigit(bytes[i + 3]!);
      if (high >= 0 && low >= 0) {
        bytes[out++] = (high << 4) | low;
        i += 3;
        continue;
      }
    }
    bytes[out++] = byte;
  }
  return bytes.toString('utf8', 0, out);
}

/** The header's fields before `;`: priority, sequence, timestamp, flag; null when there are fewer. */
function headerFields(header: string): string[] | null {
  const fields = header.split(',');
  return fields.length >= 4 ? fields : null;
}

/** The sequence number of a record, read from its header alone (a look for unread records needs no more). */
export function kmsgSequence(record: string): number | null {
  const semicolon = record.indexOf(';');
  const fields = headerFields(semicolon < 0 ? '' : record.slice(0, semicolon));
  return fields === null ? null : decimal(fields[1]!);
}

function dictionaryOf(lines: readonly string[]): ReadonlyMap<string, string> | null {
  if (lines.length === 0) return EMPTY;
  const dictionary = new Map<string, string>();
  for (const line of lines) {
    const equals = line.indexOf('=');
    if (line[0] !== ' ' || equals < 2) return null;
    dictionary.set(unescapeKmsg(line.slice(1, equals)), unescapeKmsg(line.slice(equals + 1)));
  }
  return dictionary;
}

/**
 * Takes one record apart; `text` is the bytes read, decoded as latin1 (one character per byte, so that the
 * escapes are undone byte for byte). Never throws: anything that is not a record is `malformed`, with why.
 */
export function parseKmsgRecord(text: string): KmsgParse {
  const semicolon = text.indexOf(';');
  const newline = text.indexOf(NEWLINE);
  if (semicolon < 0 || (newline >= 0 && newline < semicolon)) return malformed('no_header');
  const fields = headerFields(text.slice(0, semicolon));
  if (fields === null) return malformed('no_header');
  const priority = decimal(fields[0]!);
  if (priority === null) return malformed('bad_priority');
  const sequence = decimal(fields[1]!);
  if (sequence === null) return malformed('bad_sequence');
  const timestampUs = decimal(fields[2]!);
  if (timestampUs === null) return malformed('bad_timestamp');
  const flag = fields[3]!;
  if (!FLAGS.has(flag)) return malformed('bad_flag');
  const end = newline < 0 ? text.length : newline;
  // Lines after the message's newline; the record's own final newline leaves an empty last one.
  const rest = newline < 0 ? [] : text.slice(newline + 1).split(NEWLINE);
  if (rest.at(-1) === '') rest.pop();
  const dictionary = dictionaryOf(rest);
  if (dictionary === null) return malformed('bad_dictionary');
  return {
    kind: 'record',
    record: {
      facility: Math.floor(priority / 8),
      level: priority % 8,
      sequence,
      timestampUs,
      flag,
      message: unescapeKmsg(text.slice(semicolon + 1, end)),
      dictionary,
    },
  };
}

/**
 * A kernel record as the parser takes it (a journal MESSAGE, dated and with its host); null when the record
 * is not the kernel's own. `bootTimeMs` is when the kernel's clock read zero, epoch ms.
 */
export function kernelLogRecord(record: KmsgRecord, bootTimeMs: number, host: string): LogRecord | null {
  if (record.facility !== KERNEL_FACILITY) return null;
  return { text: record.message, time: Math.floor(bootTimeMs + record.timestampUs / 1000), host };
}
