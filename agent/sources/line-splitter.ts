/**
 * Lines of a byte stream that arrives in arbitrary chunks, with the byte offset a reader can resume at
 * without losing or repeating a line.
 *
 * - A line ends at '\n'; the '\n' and one '\r' before it are not part of it. An unterminated last line
 *   is held back until its newline arrives (or `finish()` says the stream has ended).
 * - A line of more than `maxLineBytes` bytes (counted before the '\n') is dropped whole and reported
 *   once, and memory never holds more than `maxLineBytes` of it: reading resyncs at the next newline.
 * - Lines are decoded as UTF-8 with U+FFFD for invalid bytes. A chunk is split at newlines before
 *   decoding, and a '\n' byte never occurs inside a UTF-8 sequence, so chunk boundaries cannot change
 *   what a line decodes to.
 */

const NEWLINE = 0x0a;
const CARRIAGE_RETURN = 0x0d;
const EMPTY = Buffer.alloc(0);

export interface LineSplitterOptions {
  maxLineBytes: number;
  /** The stream offset of the first byte pushed, so that offsets are the stream's own (a file's). */
  offset?: number;
  /** The first bytes pushed finish a line that began before `offset`: they are dropped, unreported. */
  midLine?: boolean;
  /** Called once for each overlong line, with the offset where it began. */
  onOverlong?: (lineOffset: number) => void;
}

function decode(bytes: Buffer): string {
  const end =
    bytes.length > 0 && bytes[bytes.length - 1] === CARRIAGE_RETURN ? bytes.length - 1 : bytes.length;
  return bytes.toString('utf8', 0, end);
}

export class LineSplitter {
  private readonly maxLineBytes: number;
  private readonly onOverlong: (lineOffset: number) => void;
  /** The unfinished line's bytes so far, copied: a pushed chunk may be reused by the caller. */
  private carry: Buffer = EMPTY;
  /** Dropping bytes up to the next newline: an overlong line, or the tail of a line begun before the start. */
  private skipping: boolean;
  private lineStart: number;
  private end: number;

  constructor(options: LineSplitterOptions) {
    if (!Number.isSafeInteger(options.maxLineBytes) || options.maxLineBytes < 1) {
      throw new RangeError(`maxLineBytes must be a positive integer, got ${options.maxLineBytes}`);
    }
    this.maxLineBytes = options.maxLineBytes;
    this.onOverlong = options.onOverlong ?? (() => {});
    this.skipping = options.midLine ?? false;
    this.lineStart = this.end = options.offset ?? 0;
  }

  /** The offset just after the last newline pushed: where to resume reading to lose and repeat no line. */
  get offset(): number {
    return this.lineStart;
  }

  /** Bytes pushed after `offset`: the unfinished line, whether it is held or being dropped. */
  get pending(): number {
    return this.end - this.lineStart;
  }

  /** The lines this chunk completes, in order; the chunk's unterminated tail is kept for the next push. */
  push(chunk: Buffer): string[] {
    const lines: string[] = [];
    let from = 0;
    for (let newline = chunk.indexOf(NEWLINE); newline >= 0; newline = chunk.indexOf(NEWLINE, from)) {
      const line = this.complete(chunk.subarray(from, newline));
      if (line !== null) lines.push(line);
      from = newline + 1;
      this.lineStart = this.end + from;
    }
    this.keep(chunk.subarray(from));
    this.end += chunk.length;
    return lines;
  }

  /** The unterminated last line of a stream that has ended, or null if there is none (or it was dropped). */
  finish(): string | null {
    const line = this.skipping || this.carry.length === 0 ? null : decode(this.carry);
    this.carry = EMPTY;
    this.skipping = false;
    this.lineStart = this.end;
    return line;
  }

  private complete(tail: Buffer): string | null {
    const carry = this.carry;
    const skipped = this.skipping;
    this.carry = EMPTY;
    this.skipping = false;
    if (skipped) return null;
    if (carry.length + tail.length > this.maxLineBytes) {
      this.onOverlong(this.lineStart);
      return null;
    }
    return decode(carry.length === 0 ? tail : Buffer.concat([carry, tail]));
  }

  private keep(bytes: Buffer): void {
    if (this.skipping || bytes.length === 0) return;
    if (this.carry.length + bytes.length > this.maxLineBytes) {
      this.carry = EMPTY;
      this.skipping = true;
      this.onOverlong(this.lineStart);
      return;
    }
    this.carry = Buffer.concat([this.carry, bytes]);
  }
}
