/**
 * Lines of a byte stream that arrives in chunks, for every reader of lines: the file source, the `parse`
 * command's files and segments, journalctl's stderr. One rule for all of them:
 *
 * - A line ends at '\n', which is not part of it; anything else (a '\r' before it included) is, and the
 *   parser trims trailing blanks itself. An unterminated last line is held until its newline arrives or
 *   `finish()` says the stream has ended.
 * - A line of more than `maxLineBytes` bytes is cut to its first maxLineBytes + 1 bytes, so that the
 *   parser still sees it as too long (and says so), and the rest is dropped as it streams past: memory
 *   never holds more than that of a line, whatever the input.
 *
 * Lines are handed over in blocks of whole lines, each ending with a newline: a block is a view of the
 * pushed chunk where it can be (no copy), so it decodes in one call into one flat string (a newline byte
 * never occurs inside a UTF-8 sequence, so chunk ends cannot change what a line decodes to) and its lines
 * are spans of that string.
 */

/** Longest line considered, in bytes of UTF-8: kernel log lines stay under 1 KiB, so more is junk or an attack. */
export const MAX_LINE_LENGTH = 16 * 1024;

/**
 * Whether text[start, end) is over MAX_LINE_LENGTH bytes of UTF-8. Bytes, not UTF-16 units, because the
 * splitter cuts lines by bytes: a line cut to one byte over the limit must still be over it once decoded,
 * also when the cut falls inside a character (the U+FFFD it decodes to is 3 bytes, never fewer than the
 * 1 to 3 bytes it replaces).
 */
export function isOverlong(text: string, start: number, end: number): boolean {
  const units = end - start;
  if (units > MAX_LINE_LENGTH) return true;
  // A UTF-16 unit is at most 3 bytes of UTF-8 (a surrogate pair is 4 for two units): most lines need no count.
  if (units * 3 <= MAX_LINE_LENGTH) return false;
  return Buffer.byteLength(text.slice(start, end)) > MAX_LINE_LENGTH;
}

export type LineHandler = (text: string, start: number, end: number) => void;

export const NEWLINE = 10;
const NEWLINE_BYTES = Buffer.from('\n');
const EMPTY = Buffer.alloc(0);

export interface LineSplitterOptions {
  /** Longest line in bytes, its newline not counted; MAX_LINE_LENGTH unless a reader wants less. */
  maxLineBytes?: number;
  /** The stream offset of the first byte pushed, so that offsets are the stream's own (a file's). */
  offset?: number;
  /** The first bytes pushed end a line begun before `offset`: they are dropped, through their newline. */
  midLine?: boolean;
  /** Lines that begin at or after this stream offset are not handed over: they are another reader's. */
  end?: number;
}

export class LineSplitter {
  private readonly maxLineBytes: number;
  private readonly end: number;
  /** The unfinished line's bytes so far, at most maxLineBytes + 1, copied: a chunk may be reused. */
  private carry: Buffer = EMPTY;
  /** Dropping bytes up to the next newline: the rest of a cut line, or of a line begun before the start. */
  private skipping: boolean;
  /** Where the unfinished line begins. */
  private lineStart: number;
  /** The offset just after the last byte pushed. */
  private pushed: number;

  constructor(options: LineSplitterOptions = {}) {
    const maxLineBytes = options.maxLineBytes ?? MAX_LINE_LENGTH;
    if (!Number.isSafeInteger(maxLineBytes) || maxLineBytes < 1) {
      throw new RangeError(`maxLineBytes must be a positive integer, got ${maxLineBytes}`);
    }
    this.maxLineBytes = maxLineBytes;
    this.end = options.end ?? Number.POSITIVE_INFINITY;
    this.skipping = options.midLine ?? false;
    this.lineStart = this.pushed = options.offset ?? 0;
  }

  /** The offset just after the last newline pushed: where to resume reading to lose and repeat no line. */
  get offset(): number {
    return this.lineStart;
  }

  /** Whether a line beginning at or after `end` has been reached: nothing more will be handed over. */
  get done(): boolean {
    return this.lineStart >= this.end;
  }

  /**
   * The lines this chunk completes, as blocks in order; the chunk's unterminated tail is kept for the
   * next push. A block may be a view of the chunk: it is valid as long as the chunk's bytes are.
   */
  push(chunk: Buffer): Buffer[] {
    const blocks: Buffer[] = [];
    const chunkStart = this.pushed;
    this.pushed += chunk.length;
    if (this.done) return blocks;
    const length = this.ownLength(chunk, chunkStart);
    const first = chunk.indexOf(NEWLINE);
    if (first < 0) {
      this.keep(chunk.subarray(0, length));
      return blocks;
    }
    let from = 0;
    if (this.skipping || this.carry.length > 0) {
      this.keep(chunk.subarray(0, first));
      if (this.carry.length > 0) blocks.push(Buffer.concat([this.carry, NEWLINE_BYTES]));
      this.carry = EMPTY;
      this.skipping = false;
      from = first + 1;
    }
    const last = chunk.lastIndexOf(NEWLINE, length - 1);
    this.wholeLines(chunk, from, last + 1, blocks);
    this.lineStart = chunkStart + last + 1;
    this.keep(chunk.subarray(last + 1, length));
    return blocks;
  }

  /** The unterminated last line of a stream that has ended, as a block, if there is one. */
  finish(): Buffer[] {
    const line = this.carry;
    this.carry = EMPTY;
    this.skipping = false;
    const owned = !this.done;
    this.lineStart = this.pushed;
    return line.length > 0 && owned ? [Buffer.concat([line, NEWLINE_BYTES])] : [];
  }

  /** How much of the chunk to split: all of it, or up to the newline ending the line that holds end - 1. */
  private ownLength(chunk: Buffer, chunkStart: number): number {
    if (this.pushed < this.end) return chunk.length;
    const last = chunk.indexOf(NEWLINE, Math.max(0, this.end - 1 - chunkStart));
    return last < 0 ? chunk.length : last + 1;
  }

  /**
   * Hands over chunk[from, to), whole lines, as views, each over-long line cut out of them into a block
   * of its own. One search backwards per maxLineBytes finds them: a stretch of that many bytes after a
   * line start holds a newline unless the line is too long.
   */
  private wholeLines(chunk: Buffer, from: number, to: number, blocks: Buffer[]): void {
    const limit = this.maxLineBytes;
    let blockStart = from;
    for (let lineStart = from; to - lineStart > limit + 1; ) {
      const newline = chunk.lastIndexOf(NEWLINE, lineStart + limit);
      if (newline >= lineStart) {
        lineStart = newline + 1;
        continue;
      }
      if (lineStart > blockStart) blocks.push(chunk.subarray(blockStart, lineStart));
      blocks.push(Buffer.concat([chunk.subarray(lineStart, lineStart + limit + 1), NEWLINE_BYTES]));
      // chunk[to - 1] is a newline: the search always finds one.
      lineStart = chunk.indexOf(NEWLINE, lineStart + limit + 1) + 1;
      blockStart = lineStart;
    }
    if (to > blockStart) blocks.push(chunk.subarray(blockStart, to));
  }

  /** Keeps what the unfinished line may hold; once it is over the limit, the rest is dropped. */
  private keep(bytes: Buffer): void {
    if (this.skipping || bytes.length === 0) return;
    const room = this.maxLineBytes + 1 - this.carry.length;
    this.skipping = bytes.length >= room;
    this.carry = Buffer.concat([this.carry, bytes.subarray(0, room)]);
  }
}

/** Calls onLine for every line of a decoded block (text ending with a newline). */
export function forEachLine(text: string, onLine: LineHandler): void {
  let start = 0;
  for (let newline = text.indexOf('\n'); newline >= 0; newline = text.indexOf('\n', start)) {
    onLine(text, start, newline);
    start = newline + 1;
  }
}

/** The lines of blocks as strings, for readers that hand lines on one by one. */
export function linesOf(blocks: readonly Buffer[]): string[] {
  const lines: string[] = [];
  for (const block of blocks) {
    forEachLine(block.toString('utf8'), (text, start, end) => lines.push(text.slice(start, end)));
  }
  return lines;
}
