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

import type { ChildProcess } from 'node:child_process';
import { statSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Backoff, backoffDelay } from '../backoff.ts';
import { isOverlong, MAX_LINE_LENGTH } from '../lines.ts';
import { type Logger, ThrottledWarning } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import type { LogRecord } from '../types.ts';
import { type CheckpointDirectory, ThrottledCheckpoint } from './checkpoint.ts';
import { type ExportEntry, ExportReader, isCursor } from './journal-export.ts';
import { journalTails } from './journal-files.ts';
import {
  DEFAULT_JOURNALCTL,
  describeExit,
  type Exit,
  exitOf,
  journalctlArgs,
  kill,
  StderrLines,
  startJournalctl,
  toRecords,
} from './journalctl.ts';
import { handOver, type LogSource, NOT_STARTED, type RecordHandler, type SourceProgress } from './source.ts';

const CHECKPOINT_FILE = 'journal.cursor.json';
const CHECKPOINT_INTERVAL_MS = 1000;
/** journalctl restarts: exact waits (one process per node, nothing to spread apart), 0.5 s doubling to 30 s. */
const RESTART_BACKOFF: Backoff = { initialMs: 500, maxMs: 30_000, jitter: 0 };
/** A journalctl that ran this long was healthy: the next failure starts the backoff afresh. */
const HEALTHY_RUN_MS = 60_000;
const DEFAULT_DIRECTORY_CHECK_MS = 2000;
/** A progress look that journalctl does not answer in this time counts as nothing unread. */
const PROGRESS_TIMEOUT_MS = 5000;

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

export interface JournalSourceOptions {
  directory: string;
  checkpoints: CheckpointDirectory;
  /** Without a checkpoint, reading starts this long before now, so recent drops are not lost. */
  expirationMs: number;
  log: Logger;
  metrics: Metrics;
  /** The journalctl binary; a bare name is looked up in PATH. */
  journalctl?: string;
  /**
   * How often the directory is looked at, to notice it vanish, appear or be replaced (journalctl notices
   * none of these); 2 s by default.
   */
  directoryCheckMs?: number;
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
  private readonly directoryCheckMs: number;
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
  /** Why the journal is not being read, until journalctl runs (readiness). */
  private problemText: string | null = NOT_STARTED;
  /** When journalctl is started again after it failed (this.now() ms); null while no retry waits. */
  private retryAt: number | null = null;
  /** Entries journalctl printed so far (stall detection). */
  private taken = 0;
  /**
   * The journal files' tails when a look last found nothing unread: while they stay the same, nothing was
   * appended since, and a look needs no journalctl of its own (one every 10 s on every node otherwise).
   */
  private caughtUpTails: string | null = null;

  constructor(options: JournalSourceOptions) {
    this.directory = options.directory;
    this.expirationMs = options.expirationMs;
    this.log = options.log;
    this.metrics = options.metrics;
    this.journalctl = options.journalctl ?? DEFAULT_JOURNALCTL;
    this.directoryCheckMs = options.directoryCheckMs ?? DEFAULT_DIRECTORY_CHECK_MS;
    this.now = options.now ?? Date.now;
    this.checkpoint = new ThrottledCheckpoint(
      options.checkpoints.checkpoint(CHECKPOINT_FILE),
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

  problem(): string | null {
    if (this.problemText === null || this.retryAt === null) return this.problemText;
    // Counted down at each ask, so /readyz never shows a wait that already passed.
    const seconds = Math.max(0, this.retryAt - this.now()) / 1000;
    return `${this.problemText}; ${seconds > 0 ? `retrying in ${seconds.toFixed(1)} s` : 'retrying now'}`;
  }

  async progress(): Promise<SourceProgress> {
    if (this.problemText !== null || this.stopping) return { taken: this.taken, unread: false };
    // Read before asking, so entries appended meanwhile make the next look ask again.
    const tails = await journalTails(this.directory);
    if (tails !== null && tails === this.caughtUpTails) return { taken: this.taken, unread: false };
    const unread = await this.hasUnread();
    if (!unread) this.caughtUpTails = tails;
    return { taken: this.taken, unread };
  }

  /** Whether a journalctl of its own, from where the follower goes on, has a kernel entry to show. */
  private async hasUnread(): Promise<boolean> {
    const args = journalctlArgs(this.directory, [this.position()]);
    const child = startJournalctl(this.journalctl, args, new StderrLines());
    const exited = exitOf(child);
    let unread = false;
    child.stdout!.once('data', () => {
      unread = true;
      kill(child);
    });
    const timer = setTimeout(() => kill(child), PROGRESS_TIMEOUT_MS);
    await exited;
    clearTimeout(timer);
    return unread;
  }

  private async loop(handle: RecordHandler): Promise<void> {
    const saved = await this.checkpoint.load(isCursorCheckpoint);
    this.cursor = saved?.cursor ?? null;
    let failures = 0;
    while (!this.stopping) {
      if (!(await this.directoryExists())) break;
      const started = performance.now();
      this.restarting = false;
      const exit = await this.follow(handle);
      if (this.stopping) break;
      // Reported when it was noticed; the directory, not journalctl, was the problem.
      if (this.restarting) {
        failures = 0;
        continue;
      }
      if (performance.now() - started >= HEALTHY_RUN_MS) failures = 0;
      failures++;
      const delayMs = backoffDelay(failures, RESTART_BACKOFF);
      this.reportExit(exit, delayMs);
      await sleep(delayMs, undefined, { signal: this.stopped.signal }).catch(() => {});
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
        await sleep(this.directoryCheckMs, undefined, { signal: this.stopped.signal }).catch(() => {});
        if (this.stopping) return false;
      }
    }
    if (this.missingReported) {
      this.missingReported = false;
      this.problemText = null;
      this.log.info({ directory: this.directory }, 'journal directory appeared');
    }
    return true;
  }

  private reportMissing(): void {
    if (this.missingReported) return;
    this.missingReported = true;
    this.metrics.sourceErrors.inc({ reason: 'directory_missing' });
    this.problemText = `journal directory ${this.directory} does not exist; waiting for it to appear`;
    this.retryAt = null;
    this.log.warn({ directory: this.directory }, this.problemText);
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
      this.problemText = null;
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
    }, this.directoryCheckMs);
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
    this.taken += entries.length;
    this.lastRealtimeUs =
      entries.findLast((entry) => entry.realtimeUs !== null)?.realtimeUs ?? this.lastRealtimeUs;
    const { metrics, log, now } = this;
    const settled = (await handOver(records, handle, { metrics, log, now, input: 'journal' }))?.settled;
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
    const problem = describeExit(exit, this.journalctl);
    const message = `${problem}; retrying in ${backoffMs / 1000} s`;
    this.problemText = problem;
    this.retryAt = this.now() + backoffMs;
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
