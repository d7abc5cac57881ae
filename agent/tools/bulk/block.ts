/**
 * Parsing of whole blocks of lines (file chunks, journal batches) into what the `parse` command
 * prints: counts, the drops as JSON lines, and the invalid lines with their reasons. One block is one
 * unit of work, in this thread or in a worker.
 */

import { forEachLine, NEWLINE } from '../../lines.ts';
import { createParser, type InvalidReason, NOT_PREFIXED, type ParseResult } from '../../parser/parse.ts';
import { CoreSearch, prefixCore } from '../../prefix-template.ts';
import { type SyslogOptions, SyslogReader } from '../../sources/syslog/record.ts';
import type { LogRecord, PacketDrop } from '../../types.ts';

export interface InvalidLine {
  /** 1-based within the block. */
  line: number;
  reason: InvalidReason;
  detail: string;
}

export interface BlockResult {
  lines: number;
  drops: number;
  skipped: number;
  invalid: InvalidLine[];
  /** One JSON object per drop, each ending with a newline; empty when only counting. */
  output: string;
}

/**
 * Blocks are decoded in pieces of at most this many bytes: V8 gives every string of 128 KiB or more a
 * memory mapping of its own, which made decoding 512 KiB blocks seven times slower than this.
 */
const DECODE_PIECE_BYTES = 64 * 1024;

/** The end of the piece starting at `start`: after a newline, at most DECODE_PIECE_BYTES on unless no line ends sooner. */
function pieceEnd(block: Buffer, start: number): number {
  if (block.length - start <= DECODE_PIECE_BYTES) return block.length;
  const newline = block.lastIndexOf(NEWLINE, start + DECODE_PIECE_BYTES - 1);
  if (newline >= start) return newline + 1;
  const next = block.indexOf(NEWLINE, start + DECODE_PIECE_BYTES);
  return next < 0 ? block.length : next + 1;
}

/** The contract's JSON shape: every PacketDrop field, with the time as ISO 8601 UTC. */
export function dropJson(drop: PacketDrop): string {
  return JSON.stringify({ ...drop, time: new Date(drop.time).toISOString() });
}

/** Accumulates the results of one block. */
class BlockTally {
  readonly result: BlockResult = { lines: 0, drops: 0, skipped: 0, invalid: [], output: '' };
  private readonly output: string[] = [];
  private readonly printDrops: boolean;

  constructor(printDrops: boolean) {
    this.printDrops = printDrops;
  }

  add(parsed: ParseResult): void {
    const result = this.result;
    result.lines++;
    if (parsed.kind === 'skip') {
      result.skipped++;
    } else if (parsed.kind === 'drop') {
      result.drops++;
      if (this.printDrops) this.output.push(dropJson(parsed.drop));
    } else {
      result.invalid.push({ line: result.lines, reason: parsed.reason, detail: parsed.detail });
    }
  }

  finish(): BlockResult {
    if (this.output.length > 0) this.result.output = `${this.output.join('\n')}\n`;
    return this.result;
  }
}

export class BlockParser {
  private readonly search: CoreSearch;
  private readonly syslog: SyslogReader;
  private readonly parse: (record: LogRecord) => ParseResult;
  private readonly printDrops: boolean;

  /** printDrops false counts only (`--stats`). */
  constructor(options: SyslogOptions, printDrops: boolean) {
    this.search = new CoreSearch(prefixCore(options.prefix));
    this.syslog = new SyslogReader(options);
    this.parse = createParser(options);
    this.printDrops = printDrops;
  }

  /** A block of syslog-style lines in UTF-8, each ending with a newline, as LineSplitter hands them over. */
  lines(block: Uint8Array): BlockResult {
    return this.blocks([block]);
  }

  /**
   * Consecutive blocks as one result, lines numbered from the first. Each block is parsed before the
   * next is taken, so a block may be a view of a buffer that the iterator fills again.
   */
  blocks(blocks: Iterable<Uint8Array>): BlockResult {
    const tally = new BlockTally(this.printDrops);
    // Only a line that may carry the prefix has its syslog header read.
    const onLine = (text: string, start: number, end: number): void =>
      tally.add(
        this.search.firstIn(text, start, end) >= 0
          ? this.parse(this.syslog.record(text, start, end))
          : NOT_PREFIXED,
      );
    for (const bytes of blocks) {
      const block = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      for (let start = 0; start < block.length; ) {
        const end = pieceEnd(block, start);
        forEachLine(block.toString('utf8', start, end), onLine);
        start = end;
      }
    }
    return tally.finish();
  }

  /** A batch of journal records. */
  records(records: readonly LogRecord[]): BlockResult {
    const tally = new BlockTally(this.printDrops);
    for (const record of records) tally.add(this.parse(record));
    return tally.finish();
  }
}
