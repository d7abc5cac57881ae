/**
 * `parse [--prefix P] [--journal DIR] [--stats] [FILE...]`: one JSON object per packet drop on stdout,
 * one line per unparsable prefixed line on stderr, or with --stats a single summary object.
 */

import { once } from 'node:events';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { loadConfig } from '../config.ts';
import type { BlockParser, BlockResult } from '../parser/block.ts';
import { BlockSplitter, MAX_LINE_LENGTH } from '../parser/lines.ts';
import type { ParserOptions } from '../parser/parse.ts';
import { ParserPool } from '../parser/pool.ts';
import { normalizePrefix } from '../parser/prefix.ts';
import { parseCommandArgs, UsageError } from './args.ts';

/** Large reads: the whole command is meant to go through a million lines a second. */
const READ_CHUNK_BYTES = 1 << 19;
/** Below this much file input, starting worker threads costs more than it saves. */
const PARALLEL_MIN_BYTES = 64 << 20;
/** Blocks parsed ahead of the one being printed, per worker: enough to keep every worker busy. */
const BLOCKS_AHEAD_PER_WORKER = 2;

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

/** Parses blocks here or in worker threads; results are awaited in submission order. */
type BlockEngine = (block: Buffer) => BlockResult | Promise<BlockResult>;

/** Counts and prints block results in input order, whatever the inputs. */
class ParseRun {
  lines = 0;
  drops = 0;
  invalid = 0;
  skipped = 0;
  readonly out = new BufferedOutput(process.stdout);
  readonly err = new BufferedOutput(process.stderr);

  /** Prints one block's results; `firstLine` numbers its lines in the input. */
  async report(result: BlockResult, source: string, firstLine: number): Promise<void> {
    this.lines += result.lines;
    this.drops += result.drops;
    this.skipped += result.skipped;
    this.invalid += result.invalid.length;
    this.out.add(result.output);
    for (const { line, reason, detail } of result.invalid) {
      this.err.add(`${source}:${firstLine + line - 1}: ${reason}: ${detail}\n`);
    }
    await Promise.all([this.out.flush(), this.err.flush()]);
  }

  /** Reads a file ('-' is stdin) through the engine; false when it cannot be read. */
  async file(path: string, engine: BlockEngine, ahead: number): Promise<boolean> {
    const source = path === '-' ? '<stdin>' : path;
    const input = path === '-' ? process.stdin : createReadStream(path, { highWaterMark: READ_CHUNK_BYTES });
    const splitter = new BlockSplitter(MAX_LINE_LENGTH);
    const queue: (BlockResult | Promise<BlockResult>)[] = [];
    let nextLine = 1;
    const reportOldest = async (): Promise<void> => {
      const result = await queue.shift()!;
      await this.report(result, source, nextLine);
      nextLine += result.lines;
    };
    const submit = (block: Buffer): void => {
      queue.push(engine(block));
    };
    try {
      for await (const chunk of input) {
        splitter.push(chunk as Buffer, submit);
        while (queue.length > ahead) await reportOldest();
        if (this.out.closed) return true;
      }
    } catch (err) {
      this.err.add(`kube-iptables-tailer: cannot read ${source}: ${errorMessage(err)}\n`);
      return false;
    } finally {
      splitter.finish(submit);
      while (queue.length > 0) await reportOldest();
    }
    return true;
  }

  /** Reads every kernel-transport entry of a journal directory; false when it cannot be read. */
  async journal(directory: string, parser: BlockParser): Promise<boolean> {
    let nextEntry = 1;
    try {
      const { readJournalOnce } = await import('../sources/journal.ts');
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

/** Total size of the regular files among the paths; unreadable ones count as empty (reading reports them). */
async function fileBytes(paths: readonly string[]): Promise<number> {
  const sizes = await Promise.all(
    paths.map((path) =>
      path === '-'
        ? 0
        : stat(path).then(
            (info) => (info.isFile() ? info.size : 0),
            () => 0,
          ),
    ),
  );
  return sizes.reduce((sum, size) => sum + size, 0);
}

/** The parser for this thread, loaded only when needed: with worker threads, only they load it. */
async function parserHere(options: ParserOptions, printDrops: boolean): Promise<BlockParser> {
  const { BlockParser } = await import('../parser/block.ts');
  return new BlockParser(options, printDrops);
}

/** Worker threads for file input large enough to repay starting them, else null. */
async function poolFor(paths: readonly string[], options: ParserOptions, printDrops: boolean) {
  const workers = availableParallelism();
  if (workers < 2 || (await fileBytes(paths)) < PARALLEL_MIN_BYTES) return null;
  return new ParserPool(workers, { prefix: options.prefix, timeLayout: options.timeLayout, printDrops });
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
  const config = loadConfig();
  const prefix = values.prefix ?? config.logPrefix;
  if (normalizePrefix(prefix) === '') {
    throw new UsageError('--prefix: expected the iptables --log-prefix text, e.g. calico-packet');
  }
  const printDrops = values.stats !== true;
  const options: ParserOptions = { prefix, timeLayout: config.timeLayout, now: Date.now };
  const run = new ParseRun();
  let readable = true;
  if (values.journal !== undefined) {
    readable = await run.journal(values.journal, await parserHere(options, printDrops));
  } else {
    const paths = positionals.length > 0 ? positionals : ['-'];
    const pool = await poolFor(paths, options, printDrops);
    const engine: BlockEngine = pool
      ? (block) => pool.parse(block)
      : await parserHere(options, printDrops).then(
          (parser) => (block) => parser.lines(block.toString('utf8')),
        );
    const ahead = pool ? pool.size * BLOCKS_AHEAD_PER_WORKER : 0;
    try {
      for (const path of paths) readable = (await run.file(path, engine, ahead)) && readable;
    } finally {
      await pool?.close();
    }
  }
  if (!printDrops) run.out.add(run.summary((performance.now() - started) / 1000));
  await Promise.all([run.out.flush(), run.err.flush()]);
  return readable ? 0 : 1;
}
