/**
 * `parse [--prefix P] [--journal DIR] [--stats] [FILE...]`: one JSON object per packet drop on stdout,
 * one line per unparsable prefixed line on stderr, or with --stats a single summary object.
 */

import { once } from 'node:events';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { loadConfig, PARSE_VARIABLES } from '../config.ts';
import { LineSplitter } from '../lines.ts';
import { prefixProblem } from '../prefix-template.ts';
import type { SyslogOptions } from '../sources/syslog/record.ts';
import type { BlockParser, BlockResult } from '../tools/bulk/block.ts';
import { ParserPool } from '../tools/bulk/pool.ts';
import { parseCommandArgs, UsageError } from './args.ts';

/** Large reads: the whole command is meant to go through a million lines a second. */
const READ_CHUNK_BYTES = 1 << 19;
/** Below this size a file is parsed here: starting worker threads would cost more than it saves. */
const PARALLEL_MIN_BYTES = 64 << 20;
/** Bytes per segment of a large file: tens of milliseconds of work, so that the workers finish close together. */
const SEGMENT_BYTES = 4 << 20;
/** Segments parsed ahead of the one being printed, per worker: enough to keep every worker busy. */
const SEGMENTS_AHEAD_PER_WORKER = 2;

/** Collects output and writes it once per block, waiting for 'drain' when the reader is slower. */
class BufferedOutput {
  private pending: string[] = [];
  private readonly stream: NodeJS.WriteStream;
  /** Set when the reader went away (EPIPE): there is no point in reading on. */
  closed = false;

  constructor(stream: NodeJS.WriteStream) {
    this.stream = stream;
    stream.on('error', () => {
      this.closed = true;
    });
  }

  add(text: string): void {
    if (text !== '') this.pending.push(text);
  }

  async flush(): Promise<void> {
    if (this.pending.length === 0 || this.closed) return;
    const text = this.pending.join('');
    this.pending = [];
    if (this.stream.write(text)) return;
    await once(this.stream, 'drain').catch(() => {
      this.closed = true;
    });
  }
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Counts and prints block results in input order, whatever the inputs. */
class ParseRun {
  /** --stats: the invalid lines are only counted. */
  private readonly listInvalid: boolean;
  lines = 0;
  drops = 0;
  invalid = 0;
  skipped = 0;
  readonly out = new BufferedOutput(process.stdout);
  readonly err = new BufferedOutput(process.stderr);

  constructor(listInvalid: boolean) {
    this.listInvalid = listInvalid;
  }

  /** Prints one block's results; `firstLine` numbers its lines in the input. */
  async report(result: BlockResult, source: string, firstLine: number): Promise<void> {
    this.lines += result.lines;
    this.drops += result.drops;
    this.skipped += result.skipped;
    this.invalid += result.invalid.length;
    this.out.add(result.output);
    for (const { line, reason, detail } of this.listInvalid ? result.invalid : []) {
      this.err.add(`${source}:${firstLine + line - 1}: ${reason}: ${detail}\n`);
    }
    await Promise.all([this.out.flush(), this.err.flush()]);
  }

  /** Reads a file ('-' is stdin) and parses it in this thread; false when it cannot be read. */
  async file(path: string, parser: BlockParser): Promise<boolean> {
    const source = path === '-' ? '<stdin>' : path;
    const input = path === '-' ? process.stdin : createReadStream(path, { highWaterMark: READ_CHUNK_BYTES });
    const splitter = new LineSplitter();
    let nextLine = 1;
    const reportBlocks = async (blocks: readonly Buffer[]): Promise<void> => {
      const result = parser.blocks(blocks);
      await this.report(result, source, nextLine);
      nextLine += result.lines;
    };
    try {
      for await (const chunk of input) {
        await reportBlocks(splitter.push(chunk as Buffer));
        if (this.out.closed) return true;
      }
    } catch (err) {
      this.err.add(`kube-iptables-tailer: cannot read ${source}: ${errorMessage(err)}\n`);
      return false;
    } finally {
      await reportBlocks(splitter.finish());
    }
    return true;
  }

  /** Parses a large regular file in segments on the pool's workers; false when it cannot be read. */
  async segments(path: string, size: number, pool: ParserPool): Promise<boolean> {
    const count = Math.max(1, Math.ceil(size / SEGMENT_BYTES));
    const queue: Promise<BlockResult>[] = [];
    let submitted = 0;
    let nextLine = 1;
    try {
      for (;;) {
        while (submitted < count && queue.length < pool.size * SEGMENTS_AHEAD_PER_WORKER) {
          const start = submitted * SEGMENT_BYTES;
          // The last segment reads on to the end, however much the file has grown since it was measured.
          const end = ++submitted === count ? Number.POSITIVE_INFINITY : start + SEGMENT_BYTES;
          const parsed = pool.parse({ path, start, end });
          // Awaited in order below; one failing behind an earlier failure must not go unhandled.
          parsed.catch(() => undefined);
          queue.push(parsed);
        }
        const next = queue.shift();
        if (next === undefined || this.out.closed) return true;
        const result = await next;
        await this.report(result, path, nextLine);
        nextLine += result.lines;
      }
    } catch (err) {
      this.err.add(`kube-iptables-tailer: cannot read ${path}: ${errorMessage(err)}\n`);
      return false;
    }
  }

  /** Reads every kernel-transport entry of a journal directory; false when it cannot be read. */
  async journal(directory: string, parser: BlockParser): Promise<boolean> {
    let nextEntry = 1;
    try {
      const { readJournalOnce } = await import('../tools/bulk/journal-read.ts');
      for await (const batch of readJournalOnce(directory)) {
        const result = parser.records(batch);
        await this.report(result, directory, nextEntry);
        nextEntry += result.lines;
        if (this.out.closed) return true;
      }
    } catch (err) {
      this.err.add(`kube-iptables-tailer: cannot read journal ${directory}: ${errorMessage(err)}\n`);
      return false;
    }
    return true;
  }

  summary(seconds: number): string {
    const { lines, drops, invalid, skipped } = this;
    return `${JSON.stringify({ lines, drops, invalid, skipped, seconds: Math.round(seconds * 1000) / 1000 })}\n`;
  }
}

/** The size of a regular file large enough for the worker threads, else null (small, not regular, unreadable). */
async function largeFileSize(path: string): Promise<number | null> {
  if (path === '-') return null;
  const info = await stat(path).catch(() => null);
  return info?.isFile() && info.size >= PARALLEL_MIN_BYTES ? info.size : null;
}

/** The parser for this thread, loaded only when needed: for large files, only the workers load it. */
async function parserHere(options: SyslogOptions, printDrops: boolean): Promise<BlockParser> {
  const { BlockParser } = await import('../tools/bulk/block.ts');
  return new BlockParser(options, printDrops);
}

export async function main(argv: string[]): Promise<number> {
  const started = performance.now();
  const { values, positionals } = parseCommandArgs(argv, {
    prefix: { type: 'string' },
    journal: { type: 'string' },
    stats: { type: 'boolean' },
  });
  if (values.journal !== undefined && positionals.length > 0) {
    throw new UsageError('--journal reads a journal directory and takes no FILE arguments');
  }
  // --prefix replaces IPTABLES_LOG_PREFIX, so a bad value there must not stop the command.
  const uses = PARSE_VARIABLES.filter(
    (name) => values.prefix === undefined || name !== 'IPTABLES_LOG_PREFIX',
  );
  const config = loadConfig(process.env, { uses });
  const prefix = values.prefix ?? config.logPrefix;
  const expected = prefixProblem(prefix);
  if (expected !== null) throw new UsageError(`--prefix: expected ${expected}`);
  const printDrops = values.stats !== true;
  const options: SyslogOptions = { prefix, timeLayout: config.timeLayout, now: Date.now };
  const run = new ParseRun(printDrops);
  let readable = true;
  if (values.journal !== undefined) {
    readable = await run.journal(values.journal, await parserHere(options, printDrops));
  } else {
    const paths = positionals.length > 0 ? positionals : ['-'];
    let parser: BlockParser | null = null;
    let pool: ParserPool | null = null;
    try {
      for (const path of paths) {
        const size = availableParallelism() > 1 ? await largeFileSize(path) : null;
        if (size !== null) {
          pool ??= new ParserPool(availableParallelism(), {
            prefix,
            timeLayout: config.timeLayout,
            printDrops,
          });
          readable = (await run.segments(path, size, pool)) && readable;
        } else {
          parser ??= await parserHere(options, printDrops);
          readable = (await run.file(path, parser)) && readable;
        }
      }
    } finally {
      await pool?.close();
    }
  }
  if (!printDrops) run.out.add(run.summary((performance.now() - started) / 1000));
  await Promise.all([run.out.flush(), run.err.flush()]);
  return readable ? 0 : 1;
}
