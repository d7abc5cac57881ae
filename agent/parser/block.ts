/**
 * Parsing of whole blocks of lines (file chunks, journal batches) into what the `parse` command
 * prints: counts, the drops as JSON lines, and the invalid lines with their reasons. One block is one
 * unit of work, in this thread or in a worker.
 */

import type { LogRecord } from '../sources/source.ts';
import type { PacketDrop } from '../types.ts';
import { forEachLine, MAX_LINE_LENGTH } from './lines.ts';
import {
  createLineParser,
  createParser,
  type InvalidReason,
  type ParseResult,
  type ParserOptions,
} from './parse.ts';

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

/** The contract's JSON shape: every PacketDrop field, with the time as ISO 8601 UTC. */
export function dropJson(drop: PacketDrop): string {
  return JSON.stringify({ ...drop, time: new Date(drop.time).toISOString() });
}

/** Accumulates the results of one block. */
class Tally {
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
  private readonly parseLine: (text: string, start: number, end: number) => ParseResult;
  private readonly parseRecord: (record: LogRecord) => ParseResult;
  private readonly printDrops: boolean;

  /** printDrops false counts only (`--stats`). */
  constructor(options: ParserOptions, printDrops: boolean) {
    this.parseLine = createLineParser(options);
    this.parseRecord = createParser(options);
    this.printDrops = printDrops;
  }

  /** A decoded block of syslog-style lines, each ending with a newline. */
  lines(text: string): BlockResult {
    const tally = new Tally(this.printDrops);
    forEachLine(text, MAX_LINE_LENGTH, (line, start, end) => tally.add(this.parseLine(line, start, end)));
    return tally.finish();
  }

  /** A batch of journal records. */
  records(records: readonly LogRecord[]): BlockResult {
    const tally = new Tally(this.printDrops);
    for (const record of records) tally.add(this.parseRecord(record));
    return tally.finish();
  }
}
