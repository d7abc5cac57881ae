// FileSource on real files in a temp dir, with real renames, truncations and unlinks while it runs.
// Waits are on conditions (lines, log messages, metrics) with a deadline. The few fixed sleeps give the
// source time to see an intermediate state (a partial line, an empty new file) or to do something it
// must not do; a slow machine makes them test less, never fail.

import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  appendFile,
  copyFile,
  cp,
  mkdir,
  open,
  readFile,
  rename,
  rm,
  rmdir,
  stat,
  truncate,
  unlink,
  writeFile,
} from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isExpired } from '../../agent/filters/expiry.ts';
import { MAX_LINE_LENGTH } from '../../agent/lines.ts';
import { Metrics } from '../../agent/metrics.ts';
import { createParser } from '../../agent/parser/parse.ts';
import { CheckpointDirectory } from '../../agent/sources/checkpoint.ts';
import { FileSource, type FileSourceOptions, READ_BACK_BYTES } from '../../agent/sources/file.ts';
import type { RecordHandler } from '../../agent/sources/source.ts';
import type { LogRecord } from '../../agent/types.ts';
import { kernLine, syslogReader, TCP4 } from '../parser/samples.ts';
import { tempDir } from '../support/journal.ts';

const run = promisify(execFile);
/** Long enough that only fs.watch can explain a line arriving within a test's deadline. */
const NO_POLL_MS = 60_000;
const FAST_POLL_MS = 50;
const DEADLINE_MS = 5000;
/** Time for several polls and hints: what has not happened by then is taken not to happen. */
const QUIET_MS = 300;

let root: string;
let caseCount = 0;
const running: Tail[] = [];

beforeAll(async () => {
  root = await tempDir('file-source');
});

afterEach(async () => {
  await Promise.all(running.splice(0).map((tail) => tail.stop()));
});

afterAll(() => rm(root, { recursive: true, force: true }));

interface Case {
  path: string;
  rotated: string;
  checkpoints: string;
}

async function newCase(): Promise<Case> {
  const dir = join(root, `case-${++caseCount}`);
  await mkdir(join(dir, 'log'), { recursive: true });
  const path = join(dir, 'log', 'kern.log');
  return { path, rotated: `${path}.1`, checkpoints: join(dir, 'state') };
}

async function until(what: string, condition: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = performance.now() + DEADLINE_MS;
  while (!(await condition())) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

interface LogEntry {
  level: number;
  msg: string;
  [key: string]: unknown;
}

/** A running FileSource and everything it produced. */
class Tail {
  readonly lines: string[] = [];
  readonly batches: (readonly LogRecord[])[] = [];
  readonly logs: LogEntry[] = [];
  readonly metrics = new Metrics();
  readonly source: FileSource;
  readonly done: Promise<void>;

  constructor(c: Case, options: Partial<FileSourceOptions>, handler?: RecordHandler) {
    const log = pino(
      { level: 'debug' },
      { write: (line: string) => this.logs.push(JSON.parse(line) as LogEntry) },
    );
    this.source = new FileSource({
      path: c.path,
      checkpoints: new CheckpointDirectory(c.checkpoints, log),
      pollIntervalMs: NO_POLL_MS,
      log,
      metrics: this.metrics,
      syslog: syslogReader(),
      ...options,
    });
    this.done = this.source.run(async (records) => {
      this.batches.push(records);
      this.lines.push(...records.map((r) => r.text));
      return handler?.(records);
    });
    running.push(this);
  }

  /** Resolves once the source has opened a file and knows where it starts. */
  static async start(
    c: Case,
    options: Partial<FileSourceOptions> = {},
    handler?: RecordHandler,
  ): Promise<Tail> {
    const tail = new Tail(c, options, handler);
    await tail.logged('following log file');
    return tail;
  }

  async stop(): Promise<void> {
    const index = running.indexOf(this);
    if (index >= 0) running.splice(index, 1);
    await this.source.stop();
    await this.done;
  }

  messages(text: string): LogEntry[] {
    return this.logs.filter((entry) => entry.msg.includes(text));
  }

  /** Log lines at warn level or above: what an operator is shown. */
  warnings(): LogEntry[] {
    return this.logs.filter((entry) => entry.level >= 40);
  }

  logged(text: string): Promise<void> {
    return until(`log "${text}"`, () => this.messages(text).length > 0);
  }

  /** Waits until `last` arrived, then returns every line so far: an exact sequence to compare. */
  async through(last: string): Promise<string[]> {
    await until(`line "${last}"`, () => this.lines.includes(last));
    return this.lines;
  }

  async errors(reason: string): Promise<number> {
    const { values } = await this.metrics.sourceErrors.get();
    return values.find((v) => v.labels.reason === reason)?.value ?? 0;
  }

  /** The condition is counted once, and it stays once: no repeated warning while it lasts. */
  async reportedOnce(reason: string, text: string): Promise<void> {
    await until(reason, async () => (await this.errors(reason)) === 1);
    await sleep(QUIET_MS);
    expect(await this.errors(reason)).toBe(1);
    expect(this.warnings()).toEqual([
      expect.objectContaining({ level: 50, msg: expect.stringContaining(text) }),
    ]);
  }

  async linesRead(): Promise<number> {
    return (await this.metrics.linesRead.get()).values[0]?.value ?? 0;
  }
}

/**
 * A handler that holds each batch it is given unsettled until the test opens it (batches counted from 0),
 * as the event writer does with drops it has not written yet; a batch `holds` declines returns nothing.
 */
class Receipts {
  private readonly opens: (() => void)[] = [];
  readonly handler: RecordHandler;

  constructor(holds: (batch: number) => boolean = () => true) {
    let batches = 0;
    this.handler = () => {
      if (!holds(batches++)) return;
      return { settled: new Promise<void>((resolve) => this.opens.push(resolve)) };
    };
  }

  open(...receipts: number[]): void {
    for (const receipt of receipts) this.opens[receipt]!();
  }
}

interface SavedPosition {
  ino: string;
  offset: number;
}

/** The case with a copy of its checkpoints, so that a restart from them leaves the first source's to it. */
async function withCopiedCheckpoints(c: Case): Promise<Case> {
  const checkpoints = `${c.checkpoints}-copy`;
  await cp(c.checkpoints, checkpoints, { recursive: true });
  return { ...c, checkpoints };
}

async function savedPosition(c: Case): Promise<SavedPosition> {
  return JSON.parse(await readFile(join(c.checkpoints, 'file.position.json'), 'utf8')) as SavedPosition;
}

describe('FileSource: following a file', () => {
  it('reads back an existing file on a first start and hands over appended lines within a second via fs.watch', async () => {
    const c = await newCase();
    await writeFile(c.path, 'old 1\nold 2\nlast line so f');
    const tail = await Tail.start(c);
    await appendFile(c.path, 'ar\n');
    expect(await tail.through('last line so far')).toEqual(['old 1', 'old 2', 'last line so far']);

    const latencies: number[] = [];
    for (let i = 0; i < 20; i++) {
      const started = performance.now();
      await appendFile(c.path, `line ${i}\n`);
      await tail.through(`line ${i}`);
      latencies.push(performance.now() - started);
    }
    expect(Math.max(...latencies)).toBeLessThan(1000);
    // Lines without a syslog header: whole, undated, for the parser to skip or report.
    expect(tail.batches.every((batch) => batch.every((r) => Number.isNaN(r.time) && r.host === null))).toBe(
      true,
    );
    expect(await tail.linesRead()).toBe(23);
  });

  it('reads a file under 64 MiB from 0 on a first start, whether or not it ends with a newline', async () => {
    const ended = await newCase();
    await writeFile(ended.path, 'old 1\nold 2\n');
    const a = await Tail.start(ended);
    await appendFile(ended.path, 'new\n');
    expect(await a.through('new')).toEqual(['old 1', 'old 2', 'new']);

    const unfinished = await newCase();
    await writeFile(unfinished.path, 'only a partial');
    const b = await Tail.start(unfinished);
    await appendFile(unfinished.path, ' line\n');
    expect(await b.through('only a partial line')).toEqual(['only a partial line']);
  });

  it('holds a partial line until its newline arrives', async () => {
    const c = await newCase();
    await writeFile(c.path, '');
    const tail = await Tail.start(c);
    for (const piece of ['calico-packet: ', 'IN=eth0 ', 'SRC=10.0.0.1']) {
      await appendFile(c.path, piece);
      await sleep(QUIET_MS / 3);
    }
    expect(tail.lines).toEqual([]);
    await appendFile(c.path, ' DST=10.0.0.2\nnext\n');
    expect(await tail.through('next')).toEqual(['calico-packet: IN=eth0 SRC=10.0.0.1 DST=10.0.0.2', 'next']);
  });

  it('reads a large backlog in batches, awaiting the handler before reading on', async () => {
    const c = await newCase();
    await writeFile(c.path, '');
    let inFlight = 0;
    let maxInFlight = 0;
    const tail = await Tail.start(c, {}, async () => {
      maxInFlight = Math.max(maxInFlight, ++inFlight);
      await sleep(1);
      inFlight--;
    });
    const expected = Array.from({ length: 20_000 }, (_, i) => `backlog line ${i} ${'x'.repeat(i % 50)}`);
    await appendFile(c.path, expected.map((l) => `${l}\n`).join(''));
    expect(await tail.through(expected.at(-1)!)).toEqual(expected);
    expect(tail.batches.length).toBeGreaterThan(1);
    expect(maxInFlight).toBe(1);
  });

  it('counts a failing handler and reads on', async () => {
    const c = await newCase();
    await writeFile(c.path, '');
    const tail = await Tail.start(c, {}, async (records) => {
      if (records.some((r) => r.text === 'poison')) throw new Error('handler failed');
    });
    await appendFile(c.path, 'poison\n');
    await until('handler_failed', async () => (await tail.errors('handler_failed')) === 1);
    await appendFile(c.path, 'after\n');
    expect(await tail.through('after')).toEqual(['poison', 'after']);
  });

  it('hands over a line over 16 KiB cut to one byte more, also when it arrives in pieces, with the next lines intact', async () => {
    const c = await newCase();
    await writeFile(c.path, '');
    const tail = await Tail.start(c);
    const limit = MAX_LINE_LENGTH;
    await appendFile(c.path, `short 1\n${'L'.repeat(limit + 5000)}\nshort 2\n`);
    await tail.through('short 2');
    for (const piece of ['M'.repeat(limit - 10), 'M'.repeat(limit), `\nshort 3\n${'x'.repeat(limit)}\n`]) {
      await appendFile(c.path, piece);
      await sleep(QUIET_MS / 3);
    }
    expect(await tail.through('x'.repeat(limit))).toEqual([
      'short 1',
      'L'.repeat(limit + 1),
      'short 2',
      'M'.repeat(limit + 1),
      'short 3',
      'x'.repeat(limit),
    ]);
    expect(await tail.errors('line_too_long')).toBe(0);
    expect(tail.warnings()).toEqual([]);
  });

  it('cuts a line over 16 KiB by bytes, multi-byte characters counted as bytes, so the parser calls it too long', async () => {
    const c = await newCase();
    await writeFile(c.path, '');
    const tail = await Tail.start(c);
    // 9,000 characters but 18,000 bytes.
    const line = `${kernLine(TCP4)} ${'é'.repeat(9000)}`;
    await appendFile(c.path, `before\n${line}\nafter\n`);
    const [before, cut, after] = await tail.through('after');
    expect([before, after]).toEqual(['before', 'after']);
    expect(cut).toBe(
      Buffer.from(line)
        .subarray(0, MAX_LINE_LENGTH + 1)
        .toString(),
    );
    const record = tail.batches.flat().find((r) => r.text === cut)!;
    expect(record.time).toBeNaN();
    const parse = createParser({ prefix: 'calico-packet' });
    expect(parse(record)).toMatchObject({
      kind: 'invalid',
      reason: 'too_long',
    });
  });

  it('rejects a poll interval that is not a positive integer', async () => {
    const c = await newCase();
    const log = pino({ level: 'silent' });
    const options = { path: c.path, checkpoints: new CheckpointDirectory(c.checkpoints, log), log };
    const metrics = new Metrics();
    const syslog = syslogReader();
    expect(() => new FileSource({ ...options, metrics, syslog, pollIntervalMs: 0 })).toThrow(RangeError);
    expect(() => new FileSource({ ...options, metrics, syslog, pollIntervalMs: 0.5 })).toThrow(RangeError);
  });

  it('hands over binary junk as text without failing', async () => {
    const c = await newCase();
    await writeFile(c.path, '');
    const tail = await Tail.start(c);
    const junk = Buffer.from(Array.from({ length: 256 }, (_, i) => i).filter((b) => b !== 0x0a));
    await appendFile(c.path, Buffer.concat([junk, Buffer.from('\n\0\0\0\nafter\n')]));
    const lines = await tail.through('after');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toContain('\ufffd');
    expect(lines[1]).toBe('\0\0\0');
    expect(await tail.errors('read_failed')).toBe(0);
  });
});

describe('FileSource: first start', () => {
  it('reads back the drops logged before it: recent ones are drops to report, older ones are left to expire', async () => {
    const c = await newCase();
    const now = Date.now();
    const loggedAgo = (minutes: number): string =>
      `${new Date(now - minutes * 60_000).toISOString()} node-1 kernel: calico-packet: ${TCP4}`;
    const written = [loggedAgo(30), loggedAgo(2), loggedAgo(1)];
    await writeFile(c.path, [...written, 'after'].map((line) => `${line}\n`).join(''));
    const tail = await Tail.start(c);
    await tail.through('after');
    // Each line dated and named by its own header, its message after the kernel's tag.
    const records = tail.batches.flat().slice(0, 3);
    expect(records.map(({ time, host }) => ({ time, host }))).toEqual(
      [30, 2, 1].map((minutes) => ({ time: now - minutes * 60_000, host: 'node-1' })),
    );
    expect(records.map(({ text, start, end }) => text.slice(start, end))).toEqual(
      written.map(() => ` calico-packet: ${TCP4}`),
    );
    const parse = createParser({ prefix: 'calico-packet' });
    const expired = records.map((record) => {
      const parsed = parse(record);
      if (parsed.kind !== 'drop') throw new Error(`not a drop: ${record.text}`);
      return isExpired(parsed.drop, now, 10 * 60_000);
    });
    expect(expired).toEqual([true, false, false]);
  });

  it.each([
    ['inside a line', 5],
    ['at the start of a line', 'line cut by the window\n'.length],
  ])(
    'reads a file over 64 MiB from the first whole line of its last 64 MiB (window starting %s)',
    async (_, shift) => {
      const c = await newCase();
      // Sparse: the holes read as zero bytes, and a run of them between two newlines as one line too long to keep.
      const windowStart = (1 << 20) + shift;
      const size = windowStart + READ_BACK_BYTES;
      const last = '\nrecent line\n';
      const file = await open(c.path, 'w');
      await file.write('ancient line\n', 0);
      await file.write('line cut by the window\nfirst line in the window\n', 1 << 20);
      await file.write(last, size - last.length);
      await file.close();
      expect((await stat(c.path)).size).toBe(size);
      const tail = await Tail.start(c);
      expect(await tail.through('recent line')).toEqual([
        'first line in the window',
        '\0'.repeat(MAX_LINE_LENGTH + 1),
        'recent line',
      ]);
    },
  );
});

describe('FileSource: rotation', () => {
  it('rename and create: finishes the old file, including what the writer appended after the rename', async () => {
    const c = await newCase();
    await writeFile(c.path, '');
    const tail = await Tail.start(c);
    const writer = await open(c.path, 'a');
    await writer.write('a1\na2\n');
    await tail.through('a2');
    await writer.write('a3 beg');
    await rename(c.path, c.rotated);
    await writer.write('un\na4\n');
    await writer.close();
    await appendFile(c.path, 'b1\n');
    await appendFile(c.path, 'b2\n');
    expect(await tail.through('b2')).toEqual(['a1', 'a2', 'a3 begun', 'a4', 'b1', 'b2']);
    expect(tail.messages('log file was rotated')).toHaveLength(1);
  });

  it('rename and create: keeps reading the old file while the new one is empty (until the writer reopens)', async () => {
    const c = await newCase();
    await writeFile(c.path, '');
    const tail = await Tail.start(c);
    const writer = await open(c.path, 'a');
    await writer.write('a1\n');
    await tail.through('a1');
    await rename(c.path, c.rotated);
    await writeFile(c.path, '');
    await sleep(QUIET_MS);
    await writer.write('a2\n');
    await tail.through('a2');
    await writer.write('a3\n');
    await writer.close();
    await appendFile(c.path, 'b1\n');
    expect(await tail.through('b1')).toEqual(['a1', 'a2', 'a3', 'b1']);
  });

  it('rename and create: hands over the unterminated last line of the old file when switching', async () => {
    const c = await newCase();
    await writeFile(c.path, '');
    const tail = await Tail.start(c);
    await appendFile(c.path, 'a1\ncut short');
    await tail.through('a1');
    await rename(c.path, c.rotated);
    await appendFile(c.path, 'b1\n');
    expect(await tail.through('b1')).toEqual(['a1', 'cut short', 'b1']);
  });

  it('copytruncate: reads from 0 when the file shrinks below the offset', async () => {
    const c = await newCase();
    await writeFile(c.path, '');
    const tail = await Tail.start(c);
    const before = ['a1', 'a2', 'a3'].map((l) => `${l} ${'-'.repeat(40)}`);
    await appendFile(c.path, before.map((l) => `${l}\n`).join(''));
    await tail.through(before[2]!);
    await copyFile(c.path, c.rotated);
    await truncate(c.path, 0);
    // Shorter than what was read, so the shrink is visible however late the source looks.
    await appendFile(c.path, 'b1\nb2\n');
    await tail.through('b2');
    await tail.logged('log file was truncated');
    const after = `b3 ${'-'.repeat(200)}`;
    await appendFile(c.path, `${after}\n`);
    expect(await tail.through(after)).toEqual([...before, 'b1', 'b2', after]);
  });

  it('delete and recreate: reads the new file from 0, without counting the gap as an error', async () => {
    const c = await newCase();
    await writeFile(c.path, '');
    const tail = await Tail.start(c);
    await appendFile(c.path, 'a1\n');
    await tail.through('a1');
    await unlink(c.path);
    await tail.logged('log file disappeared');
    await appendFile(c.path, 'b1\nb2\n');
    expect(await tail.through('b2')).toEqual(['a1', 'b1', 'b2']);
    expect(await tail.errors('file_missing')).toBe(0);
  });

  it('waits for a missing file, logging once, and reads it from 0 when it appears', async () => {
    const c = await newCase();
    const tail = new Tail(c, { pollIntervalMs: FAST_POLL_MS });
    await until('file_missing', async () => (await tail.errors('file_missing')) === 1);
    await sleep(QUIET_MS);
    expect(await tail.errors('file_missing')).toBe(1);
    expect(tail.messages('does not exist')).toHaveLength(1);
    await writeFile(c.path, 'first\nsecond\n');
    expect(await tail.through('second')).toEqual(['first', 'second']);
  });

  it('follows many rotations in a row without losing or repeating a line', async () => {
    const c = await newCase();
    await writeFile(c.path, '');
    const tail = await Tail.start(c, { pollIntervalMs: FAST_POLL_MS });
    const expected: string[] = [];
    for (let round = 0; round < 10; round++) {
      const writer = await open(c.path, 'a');
      for (let i = 0; i < 5; i++) {
        const line = `round ${round} line ${i}`;
        expected.push(line);
        await writer.write(`${line}\n`);
      }
      // A file renamed away again before the source ever opened it would be missed: rotations must
      // be further apart than the source takes to notice one.
      await tail.through(`round ${round} line 4`);
      await rename(c.path, c.rotated);
      const late = `round ${round} late`;
      expected.push(late);
      await writer.write(`${late}\n`);
      await writer.close();
      await writeFile(c.path, '');
    }
    await appendFile(c.path, 'end\n');
    expect(await tail.through('end')).toEqual([...expected, 'end']);
  });
});

describe('FileSource: checkpoints', () => {
  it('resumes after the last handled line, holding back a partial line across the restart', async () => {
    const c = await newCase();
    await writeFile(c.path, 'old\n');
    const first = await Tail.start(c);
    await appendFile(c.path, 'a1\na2\na3 beg');
    await first.through('a2');
    await first.stop();
    const saved = JSON.parse(await readFile(join(c.checkpoints, 'file.position.json'), 'utf8')) as unknown;
    const { dev, ino } = await stat(c.path, { bigint: true });
    const head = createHash('sha256').update('old\na1\na2\n').digest('hex');
    expect(saved).toEqual({ path: c.path, dev: String(dev), ino: String(ino), offset: 10, head });

    await appendFile(c.path, 'un\na4\n');
    const second = await Tail.start(c);
    await appendFile(c.path, 'a5\n');
    expect([...first.lines, ...(await second.through('a5'))]).toEqual([
      'old',
      'a1',
      'a2',
      'a3 begun',
      'a4',
      'a5',
    ]);
    expect(second.messages('log file was rotated')).toEqual([]);
  });

  it('keeps the position before an unsettled batch while later ones settle; a restart re-reads exactly its lines and after', async () => {
    const c = await newCase();
    await writeFile(c.path, '');
    const receipts = new Receipts();
    const first = await Tail.start(c, {}, receipts.handler);
    for (const line of ['a1', 'a2', 'a3']) {
      await appendFile(c.path, `${line}\n`);
      await first.through(line);
    }
    receipts.open(0, 2);
    await first.stop();
    expect((await savedPosition(c)).offset).toBe(3);

    const second = await Tail.start(await withCopiedCheckpoints(c));
    expect(await second.through('a3')).toEqual(['a2', 'a3']);
    await second.stop();
    // The first source's batch settles after its stop: its second stop saves that.
    receipts.open(1);
    await first.source.stop();
    expect((await savedPosition(c)).offset).toBe(9);
  });

  it('moves no position past an unsettled batch for later reads with nothing to settle or no whole line', async () => {
    const c = await newCase();
    await writeFile(c.path, '');
    const receipts = new Receipts((batch) => batch === 0);
    const first = await Tail.start(c, {}, receipts.handler);
    await appendFile(c.path, 'a1\n');
    await first.through('a1');
    await appendFile(c.path, 'a2\n');
    await first.through('a2');
    await appendFile(c.path, 'a3 beg');
    await sleep(QUIET_MS);
    await first.stop();
    expect((await savedPosition(c)).offset).toBe(0);
    receipts.open(0);
    await first.source.stop();
    expect((await savedPosition(c)).offset).toBe(6);
  });

  it('keeps the position in the old file while its last batch is unsettled across a rotation; a restart finishes it from `.1`', async () => {
    const c = await newCase();
    await writeFile(c.path, '');
    const receipts = new Receipts();
    const first = await Tail.start(c, {}, receipts.handler);
    await appendFile(c.path, 'a1\n');
    await first.through('a1');
    await appendFile(c.path, 'a2\n');
    await first.through('a2');
    const old = await stat(c.path, { bigint: true });
    await rename(c.path, c.rotated);
    await writeFile(c.path, 'b1\n');
    await first.through('b1');
    receipts.open(0, 2);
    await first.stop();
    expect(await savedPosition(c)).toMatchObject({ ino: String(old.ino), offset: 3 });

    const second = new Tail(await withCopiedCheckpoints(c), {});
    expect(await second.through('b1')).toEqual(['a2', 'b1']);
    expect(second.messages('rotated while stopped')).toHaveLength(1);
    await second.stop();
    receipts.open(1);
    await first.source.stop();
    const now = await stat(c.path, { bigint: true });
    expect(await savedPosition(c)).toMatchObject({ ino: String(now.ino), offset: 3 });
  });

  it('saves the checkpoint while running, not only on stop', async () => {
    const c = await newCase();
    await writeFile(c.path, '');
    const tail = await Tail.start(c);
    await appendFile(c.path, 'a1\n');
    const file = join(c.checkpoints, 'file.position.json');
    await until('checkpoint at a1', async () => {
      const text = await readFile(file, 'utf8').catch(() => '{}');
      return (JSON.parse(text) as { offset?: number }).offset === 3;
    });
    expect(tail.lines).toEqual(['a1']);
  });

  /** A tail stopped after a1; then a2 is appended and the file renamed to `rotatedName`, as logrotate does. */
  async function rotatedWhileStopped(c: Case, rotatedName: string): Promise<Tail> {
    await writeFile(c.path, '');
    const first = await Tail.start(c);
    await appendFile(c.path, 'a1\n');
    await first.through('a1');
    await first.stop();
    await appendFile(c.path, 'a2\n');
    await rename(c.path, rotatedName);
    return first;
  }

  it('finishes the rotated file `.1` after a rotation while stopped, then reads the new file from 0', async () => {
    const c = await newCase();
    const first = await rotatedWhileStopped(c, c.rotated);
    await appendFile(c.rotated, 'a3\n');
    await writeFile(c.path, 'b1\n');
    const second = new Tail(c, {});
    await second.through('b1');
    await appendFile(c.path, 'b2\n');
    expect([...first.lines, ...(await second.through('b2'))]).toEqual(['a1', 'a2', 'a3', 'b1', 'b2']);
    expect(second.messages('rotated while stopped')).toHaveLength(1);
  });

  it.each([
    ['dateext', '-20261123'],
    ['rotated twice, without compression', '.2'],
  ])('finds the checkpointed file under another rotated name (%s)', async (_, suffix) => {
    const c = await newCase();
    const first = await rotatedWhileStopped(c, c.path + suffix);
    // Decoys: a newer rotation, a compressed one and a file whose name only starts like the path's.
    await writeFile(c.rotated, 'x1\n');
    await writeFile(`${c.path}.3.gz`, 'x2\n');
    await writeFile(`${c.path}ger`, 'x3\n');
    await writeFile(c.path, 'b1\n');
    const second = new Tail(c, {});
    expect([...first.lines, ...(await second.through('b1'))]).toEqual(['a1', 'a2', 'b1']);
    expect(second.messages('rotated while stopped')).toHaveLength(1);
  });

  it('reads the file at the path from 0 when the checkpointed file is gone', async () => {
    const c = await newCase();
    await writeFile(c.path, 'old\n');
    const first = await Tail.start(c);
    await first.through('old');
    await first.stop();
    await unlink(c.path);
    await writeFile(c.path, 'b1\nb2\n');
    const second = new Tail(c, {});
    expect(await second.through('b2')).toEqual(['b1', 'b2']);
    expect(second.messages('checkpointed log file is gone')).toHaveLength(1);
  });

  it('reads from 0 a file truncated while stopped', async () => {
    const c = await newCase();
    await writeFile(c.path, `${'old '.repeat(20)}\n`);
    const first = await Tail.start(c);
    await first.stop();
    await truncate(c.path, 0);
    await appendFile(c.path, 'b1\n');
    const second = new Tail(c, {});
    expect(await second.through('b1')).toEqual(['b1']);
  });

  it('reads from 0 a file truncated and refilled past the offset while stopped (copytruncate)', async () => {
    const c = await newCase();
    await writeFile(c.path, 'old\n');
    const first = await Tail.start(c);
    await appendFile(c.path, 'a1\n');
    await first.through('a1');
    await first.stop();
    await copyFile(c.path, c.rotated);
    await truncate(c.path, 0);
    await appendFile(c.path, 'b1 longer than before\n');
    const second = new Tail(c, {});
    expect(await second.through('b1 longer than before')).toEqual(['b1 longer than before']);
  });

  it('ignores a checkpoint taken for another path', async () => {
    const c = await newCase();
    await writeFile(c.path, 'old\n');
    await mkdir(c.checkpoints, { recursive: true });
    const { dev, ino } = await stat(c.path, { bigint: true });
    const head = createHash('sha256').update('').digest('hex');
    const other = { path: '/var/log/other.log', dev: String(dev), ino: String(ino), offset: 0, head };
    await writeFile(join(c.checkpoints, 'file.position.json'), JSON.stringify(other));
    const tail = await Tail.start(c);
    await appendFile(c.path, 'new\n');
    expect(await tail.through('new')).toEqual(['old', 'new']);
  });
});

describe('FileSource: a path that is not a readable regular file', () => {
  it('reports a directory once and recovers when a regular file takes its place', async () => {
    const c = await newCase();
    await mkdir(c.path);
    const tail = new Tail(c, { pollIntervalMs: FAST_POLL_MS });
    await tail.reportedOnce('not_a_regular_file', 'is a directory, not a regular file');
    await rmdir(c.path);
    await writeFile(c.path, 'x1\nx2\n');
    expect(await tail.through('x2')).toEqual(['x1', 'x2']);
    // A directory cannot be replaced in one step: if a look falls between the rmdir and the new file,
    // it finds no file, a condition of its own.
    const [, ...after] = tail.warnings();
    expect(after.length).toBeLessThanOrEqual(1);
    for (const warning of after) expect(warning.msg).toContain('does not exist; waiting for it to appear');
  });

  it('reports a FIFO once without blocking on it or on stop, and recovers when a file replaces it', async () => {
    const c = await newCase();
    await run('mkfifo', [c.path]);
    const first = new Tail(c, { pollIntervalMs: FAST_POLL_MS });
    await until('not_a_regular_file', async () => (await first.errors('not_a_regular_file')) === 1);
    await sleep(QUIET_MS);
    expect(first.warnings()).toEqual([
      expect.objectContaining({
        level: 50,
        msg: expect.stringContaining('is a FIFO (named pipe), not a regular file'),
      }),
    ]);
    expect(await first.errors('not_a_regular_file')).toBe(1);
    await first.stop();

    const second = new Tail(c, { pollIntervalMs: FAST_POLL_MS });
    await until('not_a_regular_file', async () => (await second.errors('not_a_regular_file')) === 1);
    // Replaced in one step, as `mv` does.
    await writeFile(`${c.path}.new`, 'x1\n');
    await rename(`${c.path}.new`, c.path);
    expect(await second.through('x1')).toEqual(['x1']);
    expect(second.warnings()).toHaveLength(1);
  });

  it.each([
    ['a directory', (path: string) => mkdir(path), (path: string) => rmdir(path)],
    ['a FIFO (named pipe)', (path: string) => run('mkfifo', [path]), (path: string) => unlink(path)],
  ])(
    'reports a followed file replaced by %s once, and follows the file that replaces it',
    async (what, create, remove) => {
      const c = await newCase();
      await writeFile(c.path, '');
      const tail = await Tail.start(c, { pollIntervalMs: FAST_POLL_MS });
      await appendFile(c.path, 'a1\n');
      await tail.through('a1');
      await unlink(c.path);
      await create(c.path);
      await tail.reportedOnce('not_a_regular_file', `is ${what}, not a regular file`);
      await remove(c.path);
      await writeFile(c.path, 'b1\nb2\n');
      expect(await tail.through('b2')).toEqual(['a1', 'b1', 'b2']);
      await appendFile(c.path, 'b3\n');
      expect(await tail.through('b3')).toEqual(['a1', 'b1', 'b2', 'b3']);
      expect(tail.warnings()).toHaveLength(1);
    },
  );
});
