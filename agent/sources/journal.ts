/**
 * The systemd journal as a log source, read through `journalctl --output=export`, so that every
 * journal file format and compression journalctl knows is supported without native bindings.
 *
 * Facts about journalctl (systemd 252) this relies on:
 * - `--directory=DIR` reads journal files directly in DIR and in subdirectories named like a machine
 *   ID (`DIR/<32 hex>/*.journal`, the usual /var/log/journal layout), and in follow mode also picks up
 *   files and machine-ID subdirectories created later.
 * - `--follow` implies `--boot` unless `--merge` is given; with `--directory` that is the last boot in
 *   the files, which would hide entries of earlier boots and make journalctl exit while DIR is empty.
 * - `--follow` without `--since` shows only the last 10 entries even after `--after-cursor`, hence
 *   `--no-tail`.
 * - Only `_TRANSPORT=kernel` is proof that the kernel wrote an entry: any local process can send
 *   `SYSLOG_IDENTIFIER=kernel`. The transport is matched by journalctl and checked again here.
 */

import { type ChildProcess, spawn } from 'node:child_process';
import { statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Logger, ThrottledWarning } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import { isOverlong, MAX_LINE_LENGTH } from '../parser/lines.ts';
import { Checkpoint, ThrottledCheckpoint } from './checkpoint.ts';
import { type ExportEntry, ExportReader, isCursor } from './journal-export.ts';
import { journalBytes, markOf, type Probe, planParts, ReadAhead } from './journal-parts.ts';
import type { LogRecord, LogSource, RecordHandler } from './source.ts';

const DEFAULT_JOURNALCTL = 'journalctl';
const CHECKPOINT_FILE = 'journal.cursor.json';
const CHECKPOINT_INTERVAL_MS = 1000;
const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 30_000;
/** A journalctl that ran this long was healthy: the next failure starts the backoff afresh. */
const HEALTHY_RUN_MS = 60_000;
const STDERR_LINES_LOGGED = 20;
const STDERR_LINE_CHARS = 500;
const STDERR_LINES_KEPT = 5;
const KILL_TIMEOUT_MS = 5000;
const DIRECTORY_CHECK_MS = 2000;

/**
 * dev:ino:birth time of the directory, or null while it does not exist. The birth time tells a directory
 * recreated between two checks, which often gets the freed inode number back.
 */
function directoryIdentity(directory: string): string | null {
  try {
    const stats = statSync(directory);
    return `${stats.dev}:${stats.ino}:${stats.birthtimeMs}`;
  } catch {
    return null;
  }
}

export type Rejection = 'untrusted_transport' | 'incomplete_entry';

function journalctlArgs(directory: string, extra: readonly string[], output = ['--output=export']): string[] {
  return [`--directory=${directory}`, ...output, '--no-pager', '--merge', ...extra, '_TRANSPORT=kernel'];
}

function recordOf(entry: ExportEntry): LogRecord | Rejection {
  if (entry.transport !== 'kernel') return 'untrusted_transport';
  if (entry.message === null || entry.realtimeUs === null) return 'incomplete_entry';
  return { text: entry.message, time: Math.floor(entry.realtimeUs / 1000), host: entry.hostname };
}

/** The entries that are kernel messages, as records; `reject` hears why each other one is not. */
export function toRecords(entries: readonly ExportEntry[], reject: (reason: Rejection) => void): LogRecord[] {
  const records: LogRecord[] = [];
  for (const entry of entries) {
    const record = recordOf(entry);
    if (typeof record === 'string') reject(record);
    else records.push(record);
  }
  return records;
}

type Exit =
  | { kind: 'error'; error: NodeJS.ErrnoException }
  | { kind: 'exit'; code: number | null; signal: NodeJS.Signals | null };

function exitOf(child: ChildProcess): Promise<Exit> {
  return new Promise((resolve) => {
    child.once('error', (error) => resolve({ kind: 'error', error }));
    child.once('close', (code, signal) => resolve({ kind: 'exit', code, signal }));
  });
}

function describeExit(exit: Exit, journalctl: string): string {
  if (exit.kind === 'error') {
    return exit.error.code === 'ENOENT'
      ? `${journalctl} not found: the image needs journalctl (package systemd) in PATH`
      : `cannot run ${journalctl}: ${exit.error.message}`;
  }
  return exit.signal !== null
    ? `journalctl was killed by ${exit.signal}`
    : `journalctl exited with ${exit.code}`;
}

/** journalctl's stderr as lines, bounded in length and number, whatever it prints. */
class StderrLines {
  readonly last: string[] = [];
  private partial = '';
  private count = 0;
  private readonly onLine: (line: string) => void;

  constructor(onLine: (line: string) => void = () => {}) {
    this.onLine = onLine;
  }

  push(chunk: Buffer): void {
    const lines = (this.partial + chunk.toString('utf8')).split('\n');
    this.partial = lines.pop()!.slice(0, STDERR_LINE_CHARS);
    for (const line of lines) this.line(line);
  }

  end(): void {
    if (this.partial !== '') this.line(this.partial);
    this.partial = '';
  }

  private line(text: string): void {
    const line = text.slice(0, STDERR_LINE_CHARS);
    if (line.trim() === '') return;
    this.last.push(line);
    if (this.last.length > STDERR_LINES_KEPT) this.last.shift();
    if (++this.count <= STDERR_LINES_LOGGED) this.onLine(line);
  }
}

function startJournalctl(journalctl: string, args: readonly string[], stderr: StderrLines): ChildProcess {
  const child = spawn(journalctl, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stderr!.on('data', (chunk: Buffer) => stderr.push(chunk));
  child.stderr!.on('end', () => stderr.end());
  return child;
}

const isAlive = (child: ChildProcess): boolean => child.exitCode === null && child.signalCode === null;

/** SIGTERM, then SIGKILL should journalctl not be gone soon after: stop() waits for its exit. */
function kill(child: ChildProcess): void {
  if (!isAlive(child)) return;
  child.kill();
  setTimeout(() => {
    if (isAlive(child)) child.kill('SIGKILL');
  }, KILL_TIMEOUT_MS).unref();
}

/** A journal this large is read in parts, one journalctl per core (see journal-parts.ts). */
const PARALLEL_MIN_BYTES = 64 << 20;
/** Export text read ahead for the parts not yet due, in all: what a parallel read may hold in memory. */
const READ_AHEAD_BYTES = 64 << 20;
/** Read ahead of the part being handed over: enough to keep its journalctl writing. */
const DUE_READ_AHEAD_BYTES = 1 << 20;
/** A probe's first line is one short JSON object; more without a newline is not journalctl's. */
const MAX_PROBE_CHARS = 64 * 1024;

export interface ReadJournalOptions {
  journalctl?: string;
  /** Epoch ms: journalctl starts at that second, so entries up to a second older may come too. */
  sinceMs?: number | null;
  /** Journals with at least this many bytes of files are read in parts; Infinity reads in one. */
  parallelMinBytes?: number;
}

/** The first entry journalctl shows with these arguments, as `--output=json` gives it; null if none. */
export function journalProbe(journalctl: string, directory: string): Probe {
  return async (extra) => {
    const output = ['--output=json', '--output-fields=__REALTIME_TIMESTAMP'];
    const child = spawn(journalctl, journalctlArgs(directory, extra, output), {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    child.once('error', () => {});
    let text = '';
    try {
      for await (const chunk of child.stdout!) {
        text += (chunk as Buffer).toString('latin1');
        const newline = text.indexOf('\n');
        if (newline >= 0) return markOf(text.slice(0, newline));
        if (text.length > MAX_PROBE_CHARS) return null;
      }
      return null;
    } finally {
      kill(child);
    }
  };
}

/**
 * Every kernel-transport entry in a journal directory, in journal order, one batch per chunk read
 * from journalctl; then done. Throws when journalctl cannot run or fails. A large journal is read by
 * one journalctl per core at once (see journal-parts.ts).
 */
export async function* readJournalOnce(
  directory: string,
  options: ReadJournalOptions = {},
): AsyncGenerator<readonly LogRecord[]> {
  const journalctl = options.journalctl ?? DEFAULT_JOURNALCTL;
  const sinceMs = options.sinceMs ?? null;
  const since = sinceMs === null ? [] : [`--since=@${Math.floor(sinceMs / 1000)}`];
  const cores = availableParallelism();
  const large =
    cores > 1 && (await journalBytes(directory)) >= (options.parallelMinBytes ?? PARALLEL_MIN_BYTES);
  const parts = large
    ? await planParts(journalProbe(journalctl, directory), since, cores)
    : [{ startArgs: since, stopAt: null }];
  const started = parts.map((part, i) => {
    const stderr = new StderrLines();
    const child = startJournalctl(journalctl, journalctlArgs(directory, part.startArgs), stderr);
    const limit = i === 0 ? DUE_READ_AHEAD_BYTES : Math.floor(READ_AHEAD_BYTES / (parts.length - 1));
    const reader = new ExportReader(() => {}, part.stopAt);
    const parse = (chunk: Buffer): LogRecord[] | null => {
      const records = toRecords(reader.push(chunk), () => {});
      return records.length > 0 ? records : null;
    };
    const readAhead = new ReadAhead(child.stdout!, limit, parse, () => reader.stopped);
    return { stderr, child, exited: exitOf(child), reader, readAhead };
  });
  try {
    for (const { stderr, child, exited, reader, readAhead } of started) {
      yield* readAhead;
      if (reader.stopped) {
        kill(child);
        continue;
      }
      reader.end();
      const exit = await exited;
      if (exit.kind === 'error' || exit.code !== 0) {
        throw new Error([describeExit(exit, journalctl), ...stderr.last].join(': '));
      }
      // This part read on to the end of the journal without meeting the next one's first entry
      // (only if the files changed meanwhile): it read what the later parts hold as well.
      return;
    }
  } finally {
    for (const { child } of started) kill(child);
  }
}

export interface JournalSourceOptions {
  directory: string;
  checkpointDirectory: string;
  /** Without a checkpoint, reading starts this long before now, so recent drops are not lost. */
  expirationMs: number;
  log: Logger;
  metrics: Metrics;
  /** The journalctl binary; a bare name is looked up in PATH. */
  journalctl?: string;
  now?: () => number;
}

interface CursorCheckpoint {
  cursor: string;
}

function isCursorCheckpoint(value: unknown): value is CursorCheckpoint {
  if (typeof value !== 'object' || value === null) return false;
  const { cursor } = value as { cursor?: unknown };
  return typeof cursor === 'string' && isCursor(cursor);
}

/**
 * Follows the journal with `journalctl --follow`, restarting it with backoff whenever it exits, and
 * resuming after the last entry the handler took, so nothing is lost or repeated. A restart of the agent
 * resumes after the last entry settled instead: the checkpoint waits for the handler's writes.
 */
export class JournalSource implements LogSource {
  private readonly directory: string;
  private readonly expirationMs: number;
  private readonly log: Logger;
  private readonly metrics: Metrics;
  private readonly journalctl: string;
  private readonly now: () => number;
  private readonly checkpoint: ThrottledCheckpoint<CursorCheckpoint>;

  /** The cursor of the last entry whose batch the handler took, settled or not: journalctl goes on from it. */
  private cursor: string | null = null;

  /** Realtime of the last entry handled, to resume by time where the cursor is meaningless. */
  private lastRealtimeUs: number | null = null;
  private resumeAfterUs: number | null = null;
  private child: ChildProcess | null = null;
  private running: Promise<void> | null = null;
  private stopping = false;
  private readonly stopped = new AbortController();
  /** Set after a failed spawn is logged, so a missing journalctl is one log line, not one per retry. */
  private spawnFailureLogged = false;
  /** Set when the source itself stops journalctl because the directory went away: no failure to report. */
  private restarting = false;
  /** Set once the directory's absence is reported, until it is back: one log line per absence. */
  private missingReported = false;
  private readonly overlongWarning: ThrottledWarning;
  private readonly malformedWarning: ThrottledWarning;

  constructor(options: JournalSourceOptions) {
    this.directory = options.directory;
    this.expirationMs = options.expirationMs;
    this.log = options.log;
    this.metrics = options.metrics;
    this.journalctl = options.journalctl ?? DEFAULT_JOURNALCTL;
    this.now = options.now ?? Date.now;
    this.checkpoint = new ThrottledCheckpoint(
      new Checkpoint(options.checkpointDirectory, CHECKPOINT_FILE, options.log),
      CHECKPOINT_INTERVAL_MS,
    );
    this.overlongWarning = new ThrottledWarning(
      options.log,
      `skipped journal entries whose MESSAGE is longer than ${MAX_LINE_LENGTH} bytes`,
    );
    this.malformedWarning = new ThrottledWarning(
      options.log,
      'skipped malformed journalctl output up to the next entry',
    );
  }

  async run(handle: RecordHandler): Promise<void> {
    if (this.running !== null) throw new Error('JournalSource.run called twice');
    this.running = this.loop(handle);
    await this.running;
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.stopped.abort();
    if (this.child !== null) kill(this.child);
    await this.running;
    await this.checkpoint.flush();
  }

  private async loop(handle: RecordHandler): Promise<void> {
    const saved = await this.checkpoint.load(isCursorCheckpoint);
    this.cursor = saved?.cursor ?? null;
    let backoff = BACKOFF_FIRST_MS;
    while (!this.stopping) {
      if (!(await this.directoryExists())) break;
      const started = performance.now();
      this.restarting = false;
      const exit = await this.follow(handle);
      if (this.stopping) break;
      // Reported when it was noticed; the directory, not journalctl, was the problem.
      if (this.restarting) {
        backoff = BACKOFF_FIRST_MS;
        continue;
      }
      if (performance.now() - started >= HEALTHY_RUN_MS) backoff = BACKOFF_FIRST_MS;
      this.reportExit(exit, backoff);
      await sleep(backoff, undefined, { signal: this.stopped.signal }).catch(() => {});
      backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
    }
  }

  /**
   * Waits while the directory does not exist, reporting that once: journalctl would only fail on it, again
   * and again. False when the source stopped meanwhile.
   */
  private async directoryExists(): Promise<boolean> {
    if (directoryIdentity(this.directory) === null) {
      this.reportMissing();
      while (directoryIdentity(this.directory) === null) {
        await sleep(DIRECTORY_CHECK_MS, undefined, { signal: this.stopped.signal }).catch(() => {});
        if (this.stopping) return false;
      }
    }
    if (this.missingReported) {
      this.missingReported = false;
      this.log.info({ directory: this.directory }, 'journal directory appeared');
    }
    return true;
  }

  private reportMissing(): void {
    if (this.missingReported) return;
    this.missingReported = true;
    this.metrics.sourceErrors.inc({ reason: 'directory_missing' });
    this.log.warn(
      { directory: this.directory },
      `journal directory ${this.directory} does not exist; waiting for it to appear`,
    );
  }

  /** Where to start: after the last handled entry, or on a first start at now − expiration. */
  private position(): string {
    if (this.cursor !== null) return `--after-cursor=${this.cursor}`;
    if (this.resumeAfterUs !== null) return `--since=@${((this.resumeAfterUs + 1) / 1e6).toFixed(6)}`;
    return `--since=@${Math.floor((this.now() - this.expirationMs) / 1000)}`;
  }

  /** Runs one journalctl until it exits or the source stops. */
  private async follow(handle: RecordHandler): Promise<Exit> {
    const args = journalctlArgs(this.directory, ['--follow', '--no-tail', this.position()]);
    const stderr = new StderrLines((line) => this.log.warn({ journalctl: line }, 'journalctl reported'));
    const child = startJournalctl(this.journalctl, args, stderr);
    this.child = child;
    const exited = exitOf(child);
    child.once('spawn', () => {
      this.spawnFailureLogged = false;
      this.log.info({ args }, 'following the journal');
    });
    const replaced = this.watchDirectory(child);
    const reader = new ExportReader((reason) => {
      this.metrics.sourceErrors.inc({ reason: `export_${reason}` });
      this.malformedWarning.note({ directory: this.directory, reason });
    });
    try {
      for await (const chunk of child.stdout!) {
        if (this.stopping) break;
        const entries = reader.push(chunk as Buffer);
        if (entries.length > 0) await this.handleBatch(entries, reader.cursor, handle);
        if (this.stopping) break;
      }
      // An entry cut off by our own kill is not journalctl's fault.
      if (!this.stopping && !this.restarting) reader.end();
    } catch (err) {
      this.log.warn({ err }, 'reading journalctl output failed');
    } finally {
      clearInterval(replaced);
      kill(child);
    }
    const exit = await exited;
    this.child = null;
    return exit;
  }

  /**
   * journalctl keeps following a directory that was deleted, and never sees one created again at the same
   * path (it watches the old inode). When the directory vanishes or is replaced, journalctl is restarted,
   * resuming after the last cursor.
   */
  private watchDirectory(child: ChildProcess): NodeJS.Timeout {
    const identity = directoryIdentity(this.directory);
    const timer = setInterval(() => {
      const now = directoryIdentity(this.directory);
      if (now === identity) return;
      if (now === null) {
        this.reportMissing();
      } else {
        this.metrics.sourceErrors.inc({ reason: 'directory_replaced' });
        this.log.warn({ directory: this.directory }, 'journal directory was replaced; restarting journalctl');
      }
      this.restarting = true;
      clearInterval(timer);
      // A cursor from the old files cannot be found in new ones (journalctl would then skip an entry):
      // resume by time, just after the last entry handled.
      if (this.lastRealtimeUs !== null) {
        this.cursor = null;
        this.resumeAfterUs = this.lastRealtimeUs;
      }
      kill(child);
    }, DIRECTORY_CHECK_MS);
    timer.unref();
    return timer;
  }

  /** `cursor` is that of the batch's last entry, trusted or not: all of them are dealt with once settled. */
  private async handleBatch(
    entries: readonly ExportEntry[],
    cursor: string | null,
    handle: RecordHandler,
  ): Promise<void> {
    const records = toRecords(entries, (reason) => this.metrics.sourceErrors.inc({ reason })).filter(
      (record) => !this.overlong(record),
    );
    this.lastRealtimeUs =
      entries.findLast((entry) => entry.realtimeUs !== null)?.realtimeUs ?? this.lastRealtimeUs;
    let settled: Promise<void> | undefined;
    if (records.length > 0) {
      this.metrics.linesRead.inc(records.length);
      const newest = records[records.length - 1]!.time!;
      this.metrics.sourceLagSeconds.set(Math.max(0, (this.now() - newest) / 1000));
      try {
        settled = (await handle(records))?.settled;
      } catch (err) {
        // One bad batch must not stop the agent reading; it is skipped like any handled batch.
        this.metrics.sourceErrors.inc({ reason: 'handler_failed' });
        this.log.error({ err }, 'handling journal records failed');
      }
    }
    if (cursor !== null) {
      // A restarted journalctl goes on after what was read; only the saved checkpoint waits for settling.
      this.cursor = cursor;
      this.checkpoint.update({ cursor }, settled);
    }
  }

  /**
   * Kernel messages stay under 1 KiB; a longer one is skipped like an overlong line of a log file, so that
   * both sources hand the parser the same lines.
   */
  private overlong(record: LogRecord): boolean {
    if (!isOverlong(record.text, 0, record.text.length)) return false;
    this.metrics.sourceErrors.inc({ reason: 'line_too_long' });
    this.overlongWarning.note({ directory: this.directory, characters: record.text.length });
    return true;
  }

  private reportExit(exit: Exit, backoffMs: number): void {
    const message = `${describeExit(exit, this.journalctl)}; retrying in ${backoffMs / 1000} s`;
    if (exit.kind === 'error') {
      this.metrics.sourceErrors.inc({
        reason: exit.error.code === 'ENOENT' ? 'journalctl_missing' : 'journalctl_spawn_failed',
      });
      if (!this.spawnFailureLogged) this.log.error({ journalctl: this.journalctl }, message);
      this.spawnFailureLogged = true;
      return;
    }
    this.metrics.sourceErrors.inc({ reason: 'journalctl_exited' });
    this.log.warn({ directory: this.directory }, message);
  }
}
