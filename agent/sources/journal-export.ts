/**
 * Streaming reader of journalctl's export format (`journalctl --output=export`): entries separated by
 * an empty line, each field either `NAME=value\n` or, when the value is not plain text, `NAME\n`
 * followed by a little-endian uint64 length, the raw bytes and `\n`.
 *
 * Chunks may be split anywhere. Only the fields the agent uses are decoded; the others are stepped over
 * without copying. A malformed stream never throws: the entry in progress is dropped, the reason is
 * reported, and reading starts again after the next empty line. Fields and entries are capped, so
 * garbage cannot make the reader hold more than MAX_ENTRY_BYTES.
 */

/**
 * The fields the agent uses; null when the entry did not carry them. The cursor is kept apart (see
 * ExportReader.cursor): only the last one of a batch is ever needed, so only that one is decoded.
 */
export interface ExportEntry {
  /** __REALTIME_TIMESTAMP, microseconds since the epoch; null when absent or not a decimal number. */
  realtimeUs: number | null;
  hostname: string | null;
  /** _TRANSPORT; null when absent or given twice with different values. */
  transport: string | null;
  /**
   * SYSLOG_FACILITY; null when absent, NOT_A_FACILITY when not a decimal number or given twice with
   * different values. journald takes a /dev/kmsg record's from its priority, and user space that writes to
   * /dev/kmsg never gets the kernel's (0), though its entries carry _TRANSPORT=kernel too.
   */
  facility: number | null;
  /** MESSAGE as UTF-8; invalid sequences become U+FFFD. */
  message: string | null;
}

/** What can be wrong with a stream: a metric label, so a small fixed set. */
export const EXPORT_ERRORS = [
  'bad_field_name',
  'field_too_long',
  'bad_binary_length',
  'bad_binary_end',
  'entry_too_long',
  'truncated',
] as const;
export type ExportError = (typeof EXPORT_ERRORS)[number];

/** How journald spells a cursor: `s=<hex>;i=<hex>;b=<hex>;m=<hex>;t=<hex>;x=<hex>`. */
const CURSOR_PATTERN = /^[a-z]=[0-9a-f]+(;[a-z]=[0-9a-f]+)*$/;
/** Real cursors are about 150 characters. */
const MAX_CURSOR_LENGTH = 1024;

/** Whether the text is a journal cursor, safe to hand back to journalctl. */
export function isCursor(text: string): boolean {
  return text.length <= MAX_CURSOR_LENGTH && CURSOR_PATTERN.test(text);
}

/** Far above the 1 KiB a kernel log line can be, far below what could hurt the agent. */
export const MAX_FIELD_BYTES = 64 * 1024;
export const MAX_ENTRY_BYTES = 256 * 1024;
/** journald refuses field names longer than 64 bytes. */
const MAX_NAME_BYTES = 64;

const NEWLINE = 0x0a;
const EQUALS = 0x3d;
const EMPTY_LINE = Buffer.from('\n\n');

// What the reader is in the middle of.
const NAME = 0;
const TEXT = 1;
const LENGTH = 2;
const BINARY = 3;
const BINARY_END = 4;
const RESYNC = 5;

// Which kept field a value belongs to.
const SKIPPED = -1;
const CURSOR = 0;
const REALTIME = 1;
const HOSTNAME = 2;
const TRANSPORT = 3;
const MESSAGE = 4;
const FACILITY = 5;

/** ExportEntry.facility of an entry whose SYSLOG_FACILITY says nothing trustworthy. */
export const NOT_A_FACILITY = -1;

const CURSOR_NAME = Buffer.from('__CURSOR');
const REALTIME_NAME = Buffer.from('__REALTIME_TIMESTAMP');
const HOSTNAME_NAME = Buffer.from('_HOSTNAME');
const TRANSPORT_NAME = Buffer.from('_TRANSPORT');
const MESSAGE_NAME = Buffer.from('MESSAGE');
const FACILITY_NAME = Buffer.from('SYSLOG_FACILITY');
const KERNEL = Buffer.from('kernel');

/** Printable ASCII except `=`: anything else where a name should be means the stream is garbage. */
function isNameByte(c: number): boolean {
  return c > 0x20 && c < 0x7f && c !== EQUALS;
}

/** A plain loop: for the few bytes of a field name it beats a call into native code. */
function equalBytes(buf: Buffer, start: number, end: number, expected: Buffer): boolean {
  if (end - start !== expected.length) return false;
  for (let i = 0; i < expected.length; i++) {
    if (buf[start + i] !== expected[i]) return false;
  }
  return true;
}

/** Values this long or shorter are searched byte by byte; calling into native code costs more. */
const SHORT_VALUE_BYTES = 64;

/** The first newline at or after `pos`, or -1. */
function newlineAt(chunk: Buffer, pos: number): number {
  const stop = Math.min(chunk.length, pos + SHORT_VALUE_BYTES);
  for (let i = pos; i < stop; i++) if (chunk[i] === NEWLINE) return i;
  return stop === chunk.length ? -1 : chunk.indexOf(NEWLINE, stop);
}

/** Kept field names differ in length, so one comparison at most; most skipped names need none. */
function fieldId(buf: Buffer, start: number, end: number): number {
  switch (end - start) {
    case 7:
      return equalBytes(buf, start, end, MESSAGE_NAME) ? MESSAGE : SKIPPED;
    case 8:
      return equalBytes(buf, start, end, CURSOR_NAME) ? CURSOR : SKIPPED;
    case 9:
      return equalBytes(buf, start, end, HOSTNAME_NAME) ? HOSTNAME : SKIPPED;
    case 10:
      return equalBytes(buf, start, end, TRANSPORT_NAME) ? TRANSPORT : SKIPPED;
    case 15:
      return equalBytes(buf, start, end, FACILITY_NAME) ? FACILITY : SKIPPED;
    case 20:
      return equalBytes(buf, start, end, REALTIME_NAME) ? REALTIME : SKIPPED;
    default:
      return SKIPPED;
  }
}

/**
 * Microseconds since the epoch fit a double exactly until the year 2255; a larger (16-digit) value would
 * come out rounded, so it is no timestamp either.
 */
function decimal(buf: Buffer, start: number, end: number): number | null {
  if (end === start || end - start > 16) return null;
  let value = 0;
  for (let i = start; i < end; i++) {
    const digit = buf[i]! - 0x30;
    if (digit < 0 || digit > 9) return null;
    value = value * 10 + digit;
  }
  return Number.isSafeInteger(value) ? value : null;
}

function emptyEntry(): ExportEntry {
  return { realtimeUs: null, hostname: null, transport: null, facility: null, message: null };
}

export class ExportReader {
  private readonly onError: (reason: ExportError) => void;

  private state = NAME;
  private entry = emptyEntry();
  /** Bytes of the entry in progress; 0 between entries. */
  private entryBytes = 0;
  private transportSeen = false;

  /** Where the cursor of the entry in progress, then of the last entry returned, lies. */
  private entryCursor: Buffer | null = null;
  private entryCursorStart = 0;
  private entryCursorEnd = 0;
  private lastCursor: Buffer | null = null;
  private lastCursorStart = 0;
  private lastCursorEnd = 0;
  private lastCursorText: string | null = null;

  /** Entries of one host all carry the same _HOSTNAME: decode it once. */
  private hostBytes: Buffer = Buffer.alloc(0);
  private host = '';

  /** A field name split across chunks. */
  private readonly nameBytes = Buffer.alloc(MAX_NAME_BYTES);
  private nameLength = 0;

  /** The field whose value is being read, and the pieces read so far when it spans chunks. */
  private field = SKIPPED;
  private valueBytes = 0;
  private valueParts: Buffer[] = [];

  /** A binary length split across chunks. */
  private readonly lengthBytes = Buffer.alloc(8);
  private lengthHave = 0;
  private binaryLeft = 0;

  /** While resynchronising: whether the last byte seen was a newline (half of an empty line). */
  private afterNewline = false;

  /** The cursor of the entry to stop at, if any; `stopped` once it came. */
  private readonly stopAt: Buffer | null;
  private stoppedAt = false;

  /** With `stopAt`, reads up to the entry with that cursor and nothing from it on. */
  constructor(onError: (reason: ExportError) => void = () => {}, stopAt: string | null = null) {
    this.onError = onError;
    this.stopAt = stopAt === null ? null : Buffer.from(stopAt, 'latin1');
  }

  /** Whether the entry with the `stopAt` cursor came: the rest of the stream is ignored. */
  get stopped(): boolean {
    return this.stoppedAt;
  }

  /**
   * Reads one chunk; returns the entries completed by it, in stream order. The chunk must not be
   * reused afterwards: pieces of a value spanning chunks, and the last cursor, are decoded later.
   */
  push(chunk: Buffer): ExportEntry[] {
    const out: ExportEntry[] = [];
    this.feed(chunk, out);
    return out;
  }

  /** The __CURSOR of the last entry returned that had one. */
  get cursor(): string | null {
    if (this.lastCursorText === null && this.lastCursor !== null) {
      this.lastCursorText = this.lastCursor.toString('latin1', this.lastCursorStart, this.lastCursorEnd);
    }
    return this.lastCursorText;
  }

  /** The stream ended: an entry still in progress was cut off. */
  end(): void {
    const inEntry = this.state !== NAME || this.nameLength > 0 || this.entryBytes > 0;
    if (this.state !== RESYNC && inEntry) this.fail('truncated', false, 0);
    this.state = NAME;
    this.startEntry();
  }

  private feed(chunk: Buffer, out: ExportEntry[]): void {
    let pos = 0;
    while (pos < chunk.length && !this.stoppedAt) {
      switch (this.state) {
        case NAME:
          pos = this.readName(chunk, pos, out);
          break;
        case TEXT:
          pos = this.readText(chunk, pos);
          break;
        case LENGTH:
          pos = this.readLength(chunk, pos, out);
          break;
        case BINARY:
          pos = this.readBinary(chunk, pos);
          break;
        case BINARY_END:
          pos = this.readBinaryEnd(chunk, pos);
          break;
        default:
          pos = this.resync(chunk, pos);
      }
    }
  }

  private readName(chunk: Buffer, pos: number, out: ExportEntry[]): number {
    let i = pos;
    while (i < chunk.length && isNameByte(chunk[i]!)) i++;
    const length = this.nameLength + (i - pos);
    if (length > MAX_NAME_BYTES) return this.fail('bad_field_name', false, i);
    if (i === chunk.length) {
      chunk.copy(this.nameBytes, this.nameLength, pos, i);
      this.nameLength = length;
      return i;
    }
    const terminator = chunk[i]!;
    if (terminator === NEWLINE && length === 0) {
      this.finishEntry(out);
      return i + 1;
    }
    if ((terminator !== EQUALS && terminator !== NEWLINE) || length === 0) {
      return this.fail('bad_field_name', false, i);
    }
    if (this.nameLength === 0) {
      this.field = fieldId(chunk, pos, i);
    } else {
      chunk.copy(this.nameBytes, this.nameLength, pos, i);
      this.field = fieldId(this.nameBytes, 0, length);
      this.nameLength = 0;
    }
    this.entryBytes += length + 1;
    this.valueBytes = 0;
    this.state = terminator === EQUALS ? TEXT : LENGTH;
    return i + 1;
  }

  private readText(chunk: Buffer, pos: number): number {
    const newline = newlineAt(chunk, pos);
    const end = newline < 0 ? chunk.length : newline;
    // When this piece passes both caps, the one passed at an earlier byte is the reason, so that the
    // reason does not depend on where the chunks happen to end.
    const fieldRoom = MAX_FIELD_BYTES - this.valueBytes;
    const entryRoom = MAX_ENTRY_BYTES - this.entryBytes;
    this.valueBytes += end - pos;
    this.entryBytes += end - pos;
    if (end - pos > Math.min(fieldRoom, entryRoom)) {
      return this.fail(fieldRoom <= entryRoom ? 'field_too_long' : 'entry_too_long', false, end);
    }
    if (newline < 0) {
      this.keepPart(chunk, pos, end);
      return end;
    }
    this.finishValue(chunk, pos, end);
    this.entryBytes += 1;
    this.state = NAME;
    return end + 1;
  }

  private readLength(chunk: Buffer, pos: number, out: ExportEntry[]): number {
    let low: number;
    let high: number;
    let next: number;
    if (this.lengthHave === 0 && pos + 8 <= chunk.length) {
      low = chunk.readUInt32LE(pos);
      high = chunk.readUInt32LE(pos + 4);
      next = pos + 8;
    } else {
      next = pos + chunk.copy(this.lengthBytes, this.lengthHave, pos, pos + 8 - this.lengthHave);
      this.lengthHave += next - pos;
      if (this.lengthHave < 8) return next;
      this.lengthHave = 0;
      low = this.lengthBytes.readUInt32LE(0);
      high = this.lengthBytes.readUInt32LE(4);
    }
    if (high !== 0 || low > MAX_FIELD_BYTES) {
      // Likely a name line without `=` that is not followed by a length: the "length" is the start of
      // the next lines, which may hold the very empty line to resynchronise at, so rescan it.
      this.fail('bad_binary_length', true, pos);
      if (next - pos === 8) return pos;
      this.feed(Buffer.from(this.lengthBytes), out);
      return next;
    }
    this.entryBytes += 8 + low;
    if (this.entryBytes > MAX_ENTRY_BYTES) return this.fail('entry_too_long', false, next);
    this.binaryLeft = low;
    this.state = low === 0 ? BINARY_END : BINARY;
    return next;
  }

  private readBinary(chunk: Buffer, pos: number): number {
    const end = Math.min(chunk.length, pos + this.binaryLeft);
    this.binaryLeft -= end - pos;
    if (this.binaryLeft > 0) {
      this.keepPart(chunk, pos, end);
      return end;
    }
    this.finishValue(chunk, pos, end);
    this.state = BINARY_END;
    return end;
  }

  private readBinaryEnd(chunk: Buffer, pos: number): number {
    if (chunk[pos] !== NEWLINE) return this.fail('bad_binary_end', false, pos);
    this.entryBytes += 1;
    this.state = NAME;
    return pos + 1;
  }

  private resync(chunk: Buffer, pos: number): number {
    if (this.afterNewline && chunk[pos] === NEWLINE) {
      this.state = NAME;
      return pos + 1;
    }
    const empty = chunk.indexOf(EMPTY_LINE, pos);
    if (empty >= 0) {
      this.state = NAME;
      return empty + 2;
    }
    this.afterNewline = chunk[chunk.length - 1] === NEWLINE;
    return chunk.length;
  }

  private keepPart(chunk: Buffer, start: number, end: number): void {
    if (this.field !== SKIPPED && end > start) this.valueParts.push(chunk.subarray(start, end));
  }

  /** The value ends at `end` in this chunk; earlier pieces, if any, came from previous chunks. */
  private finishValue(chunk: Buffer, start: number, end: number): void {
    if (this.field === SKIPPED) return;
    if (this.valueParts.length === 0) {
      this.store(chunk, start, end);
      return;
    }
    this.valueParts.push(chunk.subarray(start, end));
    const value = Buffer.concat(this.valueParts);
    this.valueParts = [];
    this.store(value, 0, value.length);
  }

  private store(buf: Buffer, start: number, end: number): void {
    const entry = this.entry;
    switch (this.field) {
      case CURSOR:
        this.entryCursor = buf;
        this.entryCursorStart = start;
        this.entryCursorEnd = end;
        break;
      case REALTIME:
        entry.realtimeUs = decimal(buf, start, end);
        break;
      case HOSTNAME:
        entry.hostname = this.hostname(buf, start, end);
        break;
      case TRANSPORT: {
        // A second, different _TRANSPORT makes the entry's origin unknown rather than trusted.
        const transport = equalBytes(buf, start, end, KERNEL) ? 'kernel' : buf.toString('latin1', start, end);
        entry.transport = this.transportSeen && entry.transport !== transport ? null : transport;
        this.transportSeen = true;
        break;
      }
      case FACILITY: {
        const facility = decimal(buf, start, end) ?? NOT_A_FACILITY;
        entry.facility = entry.facility !== null && entry.facility !== facility ? NOT_A_FACILITY : facility;
        break;
      }
      default:
        entry.message = buf.toString('utf8', start, end);
    }
  }

  private hostname(buf: Buffer, start: number, end: number): string {
    if (!equalBytes(buf, start, end, this.hostBytes)) {
      this.hostBytes = Buffer.from(buf.subarray(start, end));
      this.host = this.hostBytes.toString('utf8');
    }
    return this.host;
  }

  private finishEntry(out: ExportEntry[]): void {
    const cursor = this.entryCursor;
    if (
      this.stopAt !== null &&
      cursor !== null &&
      equalBytes(cursor, this.entryCursorStart, this.entryCursorEnd, this.stopAt)
    ) {
      this.stoppedAt = true;
      this.startEntry();
      return;
    }
    if (this.entryBytes > 0) out.push(this.entry);
    if (this.entryCursor !== null) {
      this.lastCursor = this.entryCursor;
      this.lastCursorStart = this.entryCursorStart;
      this.lastCursorEnd = this.entryCursorEnd;
      this.lastCursorText = null;
    }
    this.startEntry();
  }

  private startEntry(): void {
    this.entry = emptyEntry();
    this.entryBytes = 0;
    this.transportSeen = false;
    this.entryCursor = null;
  }

  /**
   * Drops the entry in progress and skips to the next empty line, starting at `resumeAt`.
   * `afterNewline` says whether the byte before `resumeAt` ended a line.
   */
  private fail(reason: ExportError, afterNewline: boolean, resumeAt: number): number {
    this.onError(reason);
    this.startEntry();
    this.nameLength = 0;
    this.lengthHave = 0;
    this.valueParts = [];
    this.state = RESYNC;
    this.afterNewline = afterNewline;
    return resumeAt;
  }
}
