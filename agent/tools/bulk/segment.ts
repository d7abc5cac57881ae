/**
 * Segments of a regular file, each read and parsed by the thread that parses it: a large file is split
 * by byte ranges, and every worker reads its own, so no thread reads or copies bytes for another.
 * A segment holds the lines that START in its range, so each line belongs to exactly one segment
 * wherever the range ends fall.
 */

import { closeSync, openSync, readSync } from 'node:fs';
import { LineSplitter } from '../../lines.ts';

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
   * gets one), split as LineSplitter splits them. A block may be a view of the read buffer: it is
   * valid until the next one is taken.
   */
  *blocks({ path, start, end }: Segment): Generator<Uint8Array> {
    const fd = openSync(path, 'r');
    try {
      // The line holding byte start - 1 (or ending there) is the previous segment's last.
      const from = Math.max(0, start - 1);
      const splitter = new LineSplitter({ offset: from, midLine: start > 0, end });
      for (let position = from; !splitter.done; ) {
        const wanted = Math.max(TAIL_READ_BYTES, Math.min(READ_BYTES, end - position));
        const read = readSync(fd, this.buffer, 0, wanted, position);
        if (read === 0) {
          yield* splitter.finish();
          return;
        }
        position += read;
        yield* splitter.push(this.buffer.subarray(0, read));
      }
    } finally {
      closeSync(fd);
    }
  }
}
