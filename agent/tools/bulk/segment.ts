/**
 * Segments of a regular file, each read and parsed by the thread that parses it: a large file is split
 * by byte ranges, and every worker reads its own, so no thread reads or copies bytes for another.
 * A segment holds the lines that START in its range, so each line belongs to exactly one segment
 * wherever the range ends fall.
 */

import { closeSync, openSync, readSync } from 'node:fs';
import { MAX_LINE_LENGTH, NEWLINE, NEWLINE_BYTES } from '../../lines.ts';

export interface Segment {
  path: string;
  /** Byte offset where the range starts. */
  start: number;
  /** Byte offset where it ends; Infinity for the last segment, which reads on to the end of the file. */
  end: number;
}

const READ_BYTES = 1 << 19;
/** Reads past the range's end only finish its last line: a kernel line is far shorter than this. */
const TAIL_READ_BYTES = 1 << 16;

/** Reads segments through one buffer, reused from read to read and from segment to segment. */
export class SegmentReader {
  private readonly buffer = Buffer.allocUnsafe(READ_BYTES);

  /**
   * The segment's lines as blocks of whole lines, each ending with a newline (the file's last line
   * gets one), lines longer than a read cut as BlockSplitter cuts them. A block may be a view of the
   * read buffer: it is valid until the next one is taken.
   */
  *blocks({ path, start, end }: Segment): Generator<Uint8Array> {
    const fd = openSync(path, 'r');
    try {
      const first = this.firstLineStart(fd, start, end);
      if (first >= 0) yield* this.linesFrom(fd, first, end);
    } finally {
      closeSync(fd);
    }
  }

  /** Where the first line that starts at or after `start` begins, or -1 when none starts before `end`. */
  private firstLineStart(fd: number, start: number, end: number): number {
    if (start === 0) return 0;
    // A line starts after a newline: one at end - 1 or later starts a line of the next segment.
    const newline = this.newlineIn(fd, start - 1, end - 1);
    return newline < 0 ? -1 : newline + 1;
  }

  private *linesFrom(fd: number, first: number, end: number): Generator<Uint8Array> {
    for (let position = first; ; ) {
      // At least a line's worth, so that a full read without a newline is a line too long to parse.
      const wanted = Math.max(TAIL_READ_BYTES, Math.min(READ_BYTES, end - position));
      const read = readSync(fd, this.buffer, 0, wanted, position);
      if (read === 0) return;
      const chunk = this.buffer.subarray(0, read);
      // The line that ends at end - 1 or later is the segment's last; the next one is not its own.
      const final = position + read >= end ? chunk.indexOf(NEWLINE, Math.max(0, end - 1 - position)) : -1;
      if (final >= 0) {
        yield chunk.subarray(0, final + 1);
        return;
      }
      const last = chunk.lastIndexOf(NEWLINE);
      if (last >= 0) {
        // Whole lines only; the next read starts where the unfinished one does.
        yield chunk.subarray(0, last + 1);
        position += last + 1;
        continue;
      }
      // A line longer than the parser reads, or the file's last line without a newline: what the
      // parser needs to call it too long is kept, as BlockSplitter keeps it, and the rest skipped.
      const head = Buffer.concat([chunk.subarray(0, MAX_LINE_LENGTH + 1), NEWLINE_BYTES]);
      const next = read < wanted ? -1 : this.newlineIn(fd, position + read, Number.POSITIVE_INFINITY);
      yield head;
      if (next < 0 || next >= end - 1) return;
      position = next + 1;
    }
  }

  /** The position of the first newline in [from, until) of the file, or -1. */
  private newlineIn(fd: number, from: number, until: number): number {
    for (let position = from; position < until; ) {
      const read = readSync(fd, this.buffer, 0, Math.min(READ_BYTES, until - position), position);
      if (read === 0) return -1;
      const newline = this.buffer.subarray(0, read).indexOf(NEWLINE);
      if (newline >= 0) return position + newline;
      position += read;
    }
    return -1;
  }
}
