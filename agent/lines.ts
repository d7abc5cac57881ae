/**
 * Blocks of whole lines from a byte stream, for the file readers. Each read chunk becomes one block
 * that ends at its last newline, so a block decodes in one call into one flat string (a newline byte
 * never occurs inside a UTF-8 sequence) and its lines are handed over as spans of that string.
 *
 * A line longer than the parser accepts is cut to one byte over the limit (enough for the parser to
 * call it too long) and the rest dropped as it streams past, so input without newlines never grows
 * memory beyond the limit.
 */

/** Longest line considered, in bytes of UTF-8: kernel log lines stay under 1 KiB, so more is junk or an attack. */
export const MAX_LINE_LENGTH = 16 * 1024;

/**
 * Whether text[start, end) is over MAX_LINE_LENGTH bytes of UTF-8. Bytes, not UTF-16 units, because the
 * sources cut lines by bytes: a line cut to one byte over the limit must still be over it once decoded,
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

export type BlockHandler = (block: Buffer) => void;
export type LineHandler = (text: string, start: number, end: number) => void;

export const NEWLINE = 10;
export const NEWLINE_BYTES = Buffer.from('\n');
const EMPTY = Buffer.alloc(0);

export class BlockSplitter {
  private readonly limit: number;
  /** Bytes of the unfinished line, at most `limit` of them. */
  private carry: Buffer = EMPTY;
  private cut = false;

  constructor(maxLineLength: number) {
    this.limit = maxLineLength + 1;
  }

  /** Hands over the lines the chunk completes as one block ending with a newline; keeps the rest. */
  push(chunk: Buffer, onBlock: BlockHandler): void {
    const last = chunk.lastIndexOf(NEWLINE);
    if (last < 0) {
      this.keep(chunk);
      return;
    }
    if (this.carry.length === 0) {
      onBlock(chunk.subarray(0, last + 1));
    } else {
      const first = chunk.indexOf(NEWLINE);
      this.keep(chunk.subarray(0, first));
      onBlock(Buffer.concat([this.carry, NEWLINE_BYTES, chunk.subarray(first + 1, last + 1)]));
      this.carry = EMPTY;
      this.cut = false;
    }
    this.keep(chunk.subarray(last + 1));
  }

  /** Hands over the unfinished line, for input that does not end with a newline. */
  finish(onBlock: BlockHandler): void {
    if (this.carry.length === 0) return;
    onBlock(Buffer.concat([this.carry, NEWLINE_BYTES]));
    this.carry = EMPTY;
    this.cut = false;
  }

  /** Copies (the chunk's memory may be reused) at most what the limit leaves room for. */
  private keep(bytes: Buffer): void {
    if (this.cut || bytes.length === 0) return;
    const room = this.limit - this.carry.length;
    this.cut = bytes.length >= room;
    this.carry = Buffer.concat([this.carry, bytes.subarray(0, room)]);
  }
}

/** Calls onLine for every line of a decoded block (text ending with a newline), each cut to the limit. */
export function forEachLine(text: string, maxLineLength: number, onLine: LineHandler): void {
  let start = 0;
  for (let newline = text.indexOf('\n'); newline >= 0; newline = text.indexOf('\n', start)) {
    onLine(text, start, Math.min(newline, start + maxLineLength + 1));
    start = newline + 1;
  }
}
