/**
 * A kern.log-style file as a log source, followed like `tail -F` but without losing or repeating a line
 * across rotations and restarts.
 *
 * Reading is driven by change hints: fs.watch on the file (the inode, so it keeps reporting appends to
 * the file after it is renamed) and on its directory (creation, deletion, renames), plus a poll every
 * `pollIntervalMs` because fs.watch misses events on some filesystems. Any hint just means "look again":
 * each look stats the path, reads the open file from its offset to its end and hands the lines over.
 *
 * Rotation:
 * - Rename and create (logrotate's default): the path names a new inode. The old file stays open and is
 *   read to its end first; the switch to the new file, read from offset 0, waits until the new file has
 *   data, because until the writer reopens (logrotate's postrotate HUP) it still appends to the old one.
 *   Lines appended to the old file after the switch are lost; a single writer never does that.
 * - copytruncate: same inode, size below our offset: read again from 0. Lines written between
 *   logrotate's copy and its truncate are in neither file, a loss inherent to copytruncate. A truncation
 *   is invisible if the file grows past our offset again before we look (the poll interval at worst).
 * - Delete and recreate: while the path is missing the deleted file is still read through its open
 *   handle; a file that appears at the path later is read from 0, as above.
 *
 * Start position. The checkpoint, saved at most once a second and on stop, is the offset just after the
 * last line whose batch, and every earlier one, the handler has settled (see source.ts), in a file
 * identified by dev, inode and a hash of its first bytes (inode numbers are reused when a file is deleted
 * and another created).
 * - No checkpoint (or one for another path): the first whole line of the file's last READ_BACK_BYTES,
 *   so that drops logged in the minutes before the first start are reported, as the journal source
 *   reads back PACKET_DROP_EXPIRATION_MINUTES. A file has no cheap index by time: the lines are not
 *   dated here, the pipeline's expiry drops (and counts) those older than that, and the bound keeps a
 *   huge kern.log from being read whole.
 * - The checkpoint's file is at the path: resume at the offset.
 * - It was rotated while the agent was down: it is found by its identity among the uncompressed
 *   rotated names beside the path (`<path>.1`, `<path>.2`, dateext's `<path>-20261123`); that file
 *   is read from the offset to its end, then the file at the path from 0. Rotated files in between
 *   (rotated twice while down) are not read: their drops are older than the expiry, unless rotation
 *   is by size on a busy node.
 * - Not found (deleted, compressed, truncated or replaced while down): the file at the path from 0.
 * - A file that appears at the path after the start (it was missing, a directory, ...) is read from 0.
 */

import { createHash } from 'node:crypto';
import { type BigIntStats, constants, type FSWatcher, watch } from 'node:fs';
import { type FileHandle, open, readdir, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { LineSplitter, linesOf, MAX_LINE_LENGTH, NEWLINE } from '../lines.ts';
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import { type CheckpointDirectory, ThrottledCheckpoint } from './checkpoint.ts';
import { handOver, type LogSource, NOT_STARTED, type RecordHandler, type SourceProgress } from './source.ts';
import type { SyslogReader } from './syslog/record.ts';

const CHECKPOINT_FILE = 'file.position.json';
const CHECKPOINT_INTERVAL_MS = 1000;
const CHUNK_BYTES = 64 * 1024;
/** How much of a file's end a first start reads back: minutes of drops even at thousands of lines a second. */
export const READ_BACK_BYTES = 64 << 20;
/** logrotate's name for the previous file: the checkpoint's file is looked for there first. */
const ROTATED_SUFFIX = '.1';
/** logrotate compresses into a new file: a compressed rotation never has the checkpoint's inode. */
const COMPRESSED = /\.(gz|xz|bz2|zst|lz4|Z)$/;
/** How many leading bytes identify a file's content, next to its inode number. */
const HEAD_BYTES = 1024;
const DECIMAL = /^\d+$/;
const SHA256_HEX = /^[0-9a-f]{64}$/;

export interface FileSourceOptions {
  path: string;
  checkpoints: CheckpointDirectory;
  /** How often to look for changes fs.watch did not report. */
  pollIntervalMs: number;
  log: Logger;
  metrics: Metrics;
  /** Reads each line's syslog header: the parser takes a file's lines as messages, like journal entries. */
  syslog: SyslogReader;
}

interface Position {
  path: string;
  /** dev and ino as decimal strings: 64-bit values that a JSON number cannot hold exactly. */
  dev: string;
  ino: string;
  offset: number;
  /**
   * SHA-256 (hex) of the file's first min(offset, HEAD_BYTES) bytes. A file deleted and recreated
   * while the agent was down often gets the same inode number back; its first bytes tell it apart.
   */
  head: string;
}

function isPosition(value: unknown): value is Position {
  if (typeof value !== 'object' || value === null) return false;
  const { path, dev, ino, offset, head } = value as Partial<Record<keyof Position, unknown>>;
  return (
    typeof path === 'string' &&
    typeof dev === 'string' &&
    DECIMAL.test(dev) &&
    typeof ino === 'string' &&
    DECIMAL.test(ino) &&
    Number.isSafeInteger(offset) &&
    (offset as number) >= 0 &&
    typeof head === 'string' &&
    SHA256_HEX.test(head)
  );
}

/** A hash of a file's first `length` bytes. */
interface Head {
  length: number;
  hash: string;
}

function headLength(offset: number): number {
  return Math.min(offset, HEAD_BYTES);
}

async function headOf(handle: FileHandle, length: number): Promise<Head> {
  const bytes = Buffer.alloc(length);
  const { bytesRead } = await handle.read(bytes, 0, length, 0);
  return { length, hash: createHash('sha256').update(bytes.subarray(0, bytesRead)).digest('hex') };
}

interface FileId {
  dev: bigint;
  ino: bigint;
}

function sameFile(a: FileId, b: FileId): boolean {
  return a.dev === b.dev && a.ino === b.ino;
}

/** What a path names right now, or why it cannot be read. */
type Found =
  | { kind: 'file'; id: FileId; size: number }
  | { kind: 'missing' }
  | { kind: 'not_a_regular_file'; detail: string }
  | { kind: 'unreadable'; detail: string };

/** Why the path is not being read, or why reading it failed. */
type Problem = Exclude<Found, { kind: 'file' }> | { kind: 'read_failed'; detail: string };

function describeType(stats: BigIntStats): string {
  if (stats.isDirectory()) return 'a directory';
  if (stats.isFIFO()) return 'a FIFO (named pipe)';
  if (stats.isSocket()) return 'a socket';
  if (stats.isCharacterDevice() || stats.isBlockDevice()) return 'a device';
  return 'a special file';
}

function classify(stats: BigIntStats): Found {
  if (!stats.isFile()) return { kind: 'not_a_regular_file', detail: describeType(stats) };
  return { kind: 'file', id: { dev: stats.dev, ino: stats.ino }, size: Number(stats.size) };
}

/** Expected trouble with the path becomes a Problem; anything else is thrown. */
function problemOf(err: unknown): Exclude<Found, { kind: 'file' }> {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT' || code === 'ENOTDIR') return { kind: 'missing' };
  if (code === 'EACCES' || code === 'EPERM') return { kind: 'unreadable', detail: 'permission denied' };
  throw err;
}

async function inspect(path: string): Promise<Found> {
  try {
    return classify(await stat(path, { bigint: true }));
  } catch (err) {
    return problemOf(err);
  }
}

type Opened = { kind: 'open'; handle: FileHandle; id: FileId; size: number };

/**
 * Where logrotate may have moved the file at `path`: `<path>.1`, then the other uncompressed names
 * beside it that extend the path's (numbered, dated, any suffix), sorted.
 */
async function rotatedNames(path: string): Promise<string[]> {
  const directory = dirname(path);
  const base = basename(path);
  const isRotation = (name: string): boolean =>
    name.startsWith(base) && /^[.-]/.test(name.slice(base.length)) && !COMPRESSED.test(name);
  const first = path + ROTATED_SUFFIX;
  const names = await readdir(directory).catch(() => []);
  const others = names.filter(isRotation).map((name) => join(directory, name));
  return [first, ...others.filter((name) => name !== first).sort()];
}

function isInodeOf(id: FileId, position: Position): boolean {
  return String(id.dev) === position.dev && String(id.ino) === position.ino;
}

/** Whether the path names the checkpoint's inode; a stat only, so that other files are never opened. */
async function hasInodeOf(path: string, position: Position): Promise<boolean> {
  const info = await stat(path, { bigint: true }).catch(() => null);
  return info !== null && isInodeOf(info, position);
}

/** Whether the opened file is the checkpoint's: the same inode, long enough, with the same first bytes. */
async function holdsPosition(opened: Opened, position: Position): Promise<boolean> {
  if (!isInodeOf(opened.id, position)) return false;
  if (position.offset > opened.size) return false;
  return (await headOf(opened.handle, headLength(position.offset))).hash === position.head;
}

/** The work's result; if it fails, the handle is closed first, so that a failed open leaks nothing. */
async function orClose<T>(handle: FileHandle, work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (err) {
    await handle.close();
    throw err;
  }
}

/**
 * Opens the path if it is a regular file. O_NONBLOCK keeps a FIFO from blocking the open, and the
 * check is on what was opened, not on what the path named a moment before.
 */
async function openRegular(path: string): Promise<Opened | Exclude<Found, { kind: 'file' }>> {
  let handle: FileHandle;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    return problemOf(err);
  }
  const found = classify(await orClose(handle, handle.stat({ bigint: true })));
  if (found.kind === 'file') return { kind: 'open', handle, id: found.id, size: found.size };
  await handle.close();
  return found;
}

export interface Start {
  offset: number;
  /** The offset is inside a line: its rest is dropped. */
  midLine?: boolean;
}

/**
 * Where a first start reads from: the first whole line of the file's last READ_BACK_BYTES, found from
 * the byte before them (a newline there starts a line at the window's first byte). Only a line's worth
 * is searched: the line cut by the window is the only thing skipped, and if it is too long to parse,
 * reading starts in it, mid-line, and drops the rest of it.
 */
export async function readBackStart(handle: FileHandle, size: number): Promise<Start> {
  if (size <= READ_BACK_BYTES) return { offset: 0 };
  const from = size - READ_BACK_BYTES - 1;
  const probe = Buffer.alloc(MAX_LINE_LENGTH + 1);
  const { bytesRead } = await handle.read(probe, 0, probe.length, from);
  const newline = probe.subarray(0, bytesRead).indexOf(NEWLINE);
  return newline >= 0 ? { offset: from + newline + 1 } : { offset: from + bytesRead, midLine: true };
}

/** One open file being read. */
interface FollowedFile {
  readonly handle: FileHandle;
  readonly id: FileId;
  /** The name it was opened by: the followed path, or its rotated name when resuming. */
  readonly name: string;
  /** Bytes read so far; the splitter's offset trails it by the unfinished line. */
  readOffset: number;
  splitter: LineSplitter;
  /** The head hash for the checkpoint; recomputed while the offset is below HEAD_BYTES. */
  head: Head | null;
}

/** How the next file opened at the path is positioned. */
type Resume = { kind: 'checkpoint'; position: Position } | { kind: 'read_back' } | { kind: 'beginning' };

const BEGINNING: Resume = { kind: 'beginning' };

function positiveInteger(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new RangeError(`${name} must be a positive integer, got ${value}`);
  }
  return value;
}

/** Follows one log file by path, through rotations; see the top of this file. */
export class FileSource implements LogSource {
  private readonly path: string;
  private readonly directory: string;
  private readonly fileName: string;
  private readonly pollIntervalMs: number;
  private readonly log: Logger;
  private readonly metrics: Metrics;
  private readonly syslog: SyslogReader;
  private readonly checkpoint: ThrottledCheckpoint<Position>;
  private readonly buffer = Buffer.allocUnsafe(CHUNK_BYTES);

  private handle: RecordHandler = () => {};
  private resume: Resume = { kind: 'read_back' };
  private current: FollowedFile | null = null;
  /** The condition last logged, so that a lasting one is logged once, not once per look. */
  private reported: string | null = null;
  /** Why the path is not being read, until a look reads it (readiness). */
  private problemText: string | null = NOT_STARTED;
  /** Bytes read from every file so far (stall detection). */
  private taken = 0;

  private directoryWatcher: FSWatcher | null = null;
  private fileWatcher: FSWatcher | null = null;
  /** Set by every change hint, so that a hint arriving while we read is not lost. */
  private changed = false;
  private wake: (() => void) | null = null;
  private running: Promise<void> | null = null;
  private stopping = false;

  constructor(options: FileSourceOptions) {
    this.path = options.path;
    this.directory = dirname(options.path);
    this.fileName = basename(options.path);
    this.pollIntervalMs = positiveInteger('pollIntervalMs', options.pollIntervalMs);
    this.log = options.log;
    this.metrics = options.metrics;
    this.syslog = options.syslog;
    this.checkpoint = new ThrottledCheckpoint(
      options.checkpoints.checkpoint(CHECKPOINT_FILE),
      CHECKPOINT_INTERVAL_MS,
    );
  }

  run(handle: RecordHandler): Promise<void> {
    if (this.running !== null) throw new Error('FileSource.run called twice');
    this.handle = handle;
    this.running = this.loop();
    return this.running;
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.markChanged();
    await this.running;
    await this.checkpoint.flush();
  }

  problem(): string | null {
    return this.problemText;
  }

  /** Unread: the followed file is longer than what was read, or another file with data is at the path. */
  async progress(): Promise<SourceProgress> {
    const found = await inspect(this.path).catch(() => null);
    const current = this.current;
    let unread = false;
    // While the source says why it cannot read (or has not started), readiness fails on that already.
    if (this.problemText === null && found?.kind === 'file') {
      unread =
        current !== null && sameFile(found.id, current.id) ? found.size > current.readOffset : found.size > 0;
    }
    return { taken: this.taken, unread };
  }

  private async loop(): Promise<void> {
    const saved = await this.checkpoint.load(isPosition);
    if (saved !== null && saved.path === this.path) this.resume = { kind: 'checkpoint', position: saved };
    try {
      while (!this.stopping) {
        await this.checkPath();
        await this.nextChange();
      }
    } finally {
      this.closeWatchers();
      await this.current?.handle.close();
      this.current = null;
    }
  }

  /** One look at the path: open, switch or rewind as needed, and read everything new. */
  private async checkPath(): Promise<void> {
    this.watchDirectory();
    try {
      const found = await inspect(this.path);
      if (found.kind !== 'file') {
        this.report(found);
        // Only a file present at the start is read back from its end; one appearing later is all new.
        if (this.resume.kind === 'read_back') this.resume = BEGINNING;
      }
      const opening = this.current === null;
      if (opening && found.kind === 'file') this.current = await this.openPath();
      if (this.current === null) return;
      await this.follow(this.current);
      this.problemText = null;
      // A file opened in this look is newer than `found`: whether the path has moved on is for the next look.
      if (!opening && found.kind === 'file' && found.size > 0 && !sameFile(found.id, this.current.id)) {
        await this.switchToPath(this.current);
      }
    } catch (err) {
      this.report({ kind: 'read_failed', detail: (err as Error).message });
    }
  }

  /** The old file is already read to its end; the new one has data, so the writer has moved to it. */
  private async switchToPath(old: FollowedFile): Promise<void> {
    if (this.stopping) return;
    const last = linesOf(old.splitter.finish());
    if (last.length > 0) await this.deliver(last, old);
    this.log.info({ path: this.path, finished: old.name }, 'log file was rotated; following the new file');
    this.current = null;
    this.closeFileWatcher();
    await old.handle.close();
    this.current = await this.openPath();
    if (this.current !== null) await this.follow(this.current);
  }

  private async openPath(): Promise<FollowedFile | null> {
    const opened = await openRegular(this.path);
    if (opened.kind !== 'open') {
      this.report(opened);
      return null;
    }
    const file = await orClose(opened.handle, this.startOf(opened));
    this.resume = BEGINNING;
    this.reported = null;
    this.fileWatcher = this.watch(file.name, () => true);
    await this.savePosition(file);
    this.log.info({ path: file.name, offset: file.readOffset }, 'following log file');
    // A rotated file resumed from the checkpoint is followed by the file at the path, right after it.
    if (file.name !== this.path) this.markChanged();
    return file;
  }

  /** The newly opened file, positioned where reading starts: from 0, read back, or at the checkpoint. */
  private async startOf(opened: Opened): Promise<FollowedFile> {
    switch (this.resume.kind) {
      case 'beginning':
        return this.followFrom(opened, this.path, { offset: 0 });
      case 'read_back':
        return this.followFrom(opened, this.path, await readBackStart(opened.handle, opened.size));
      case 'checkpoint':
        return this.resumeAt(this.resume.position, opened);
    }
  }

  private async resumeAt(position: Position, opened: Opened): Promise<FollowedFile> {
    if (await holdsPosition(opened, position)) {
      return this.followFrom(opened, this.path, { offset: position.offset });
    }
    const rotated = await this.openRotated(position);
    if (rotated !== null) {
      await opened.handle.close();
      this.log.info(
        { path: rotated.name },
        'log file was rotated while stopped; finishing the rotated file first',
      );
      return rotated;
    }
    this.log.info(
      { path: this.path },
      'checkpointed log file is gone (or was truncated or replaced); reading the current file from the start',
    );
    return this.followFrom(opened, this.path, { offset: 0 });
  }

  private async openRotated(position: Position): Promise<FollowedFile | null> {
    for (const name of await rotatedNames(this.path)) {
      if (!(await hasInodeOf(name, position))) continue;
      const opened = await openRegular(name);
      if (opened.kind !== 'open') continue;
      // A rotated file that cannot be read is treated as not the checkpoint's: reading goes on at the path.
      if (await holdsPosition(opened, position).catch(() => false)) {
        return this.followFrom(opened, name, { offset: position.offset });
      }
      await opened.handle.close();
    }
    return null;
  }

  /** The opened file (by `name`), to be read from `start` on. */
  private followFrom(opened: Opened, name: string, start: Start): FollowedFile {
    return {
      handle: opened.handle,
      id: opened.id,
      name,
      readOffset: start.offset,
      splitter: new LineSplitter({ offset: start.offset, midLine: start.midLine ?? false }),
      head: null,
    };
  }

  /** Reads the file from its offset to its end, from 0 if it shrank below the offset (copytruncate). */
  private async follow(file: FollowedFile): Promise<void> {
    const { size } = await file.handle.stat();
    if (size < file.readOffset) {
      this.log.info(
        { path: file.name, size, offset: file.readOffset },
        'log file was truncated; reading it from the start',
      );
      file.readOffset = 0;
      file.splitter = new LineSplitter();
      await this.savePosition(file);
    }
    while (!this.stopping) {
      const { bytesRead } = await file.handle.read(this.buffer, 0, CHUNK_BYTES, file.readOffset);
      if (bytesRead === 0) return;
      file.readOffset += bytesRead;
      this.taken += bytesRead;
      await this.deliver(linesOf(file.splitter.push(this.buffer.subarray(0, bytesRead))), file);
    }
  }

  /** Hands the lines over and waits for the handler; the checkpoint moves past them once they settle. */
  private async deliver(lines: readonly string[], file: FollowedFile): Promise<void> {
    const { metrics, log } = this;
    const settled = (
      await handOver(
        lines.map((line) => this.syslog.record(line)),
        this.handle,
        { metrics, log, input: 'log file' },
      )
    )?.settled;
    await this.savePosition(file, settled);
  }

  /** Moves the checkpoint to just after the file's last handled line, once its batch is settled. */
  private async savePosition(file: FollowedFile, settled?: Promise<void>): Promise<void> {
    const offset = file.splitter.offset;
    if (file.head?.length !== headLength(offset)) file.head = await headOf(file.handle, headLength(offset));
    this.checkpoint.update(
      {
        path: this.path,
        dev: String(file.id.dev),
        ino: String(file.id.ino),
        offset,
        head: file.head.hash,
      },
      settled,
    );
  }

  /**
   * Logs and counts a problem once, until another one (or a successful open) replaces it. A path that
   * disappears while a file is open is a rotation in progress, not a problem.
   */
  private report(problem: Problem): void {
    const rotating = problem.kind === 'missing' && this.current !== null;
    const key = rotating ? 'rotating' : `${problem.kind}:${'detail' in problem ? problem.detail : ''}`;
    if (!rotating) this.problemText = this.describe(problem).message;
    if (key === this.reported) return;
    this.reported = key;
    if (rotating) {
      this.log.info(
        { path: this.path },
        'log file disappeared; reading the open file until a new one appears',
      );
      return;
    }
    this.metrics.sourceErrors.inc({ reason: problem.kind === 'missing' ? 'file_missing' : problem.kind });
    const { level, message } = this.describe(problem);
    this.log[level]({ path: this.path }, message);
  }

  private describe(problem: Problem): { level: 'warn' | 'error'; message: string } {
    switch (problem.kind) {
      case 'missing':
        return { level: 'warn', message: `${this.path} does not exist; waiting for it to appear` };
      case 'not_a_regular_file':
        return {
          level: 'error',
          message: `${this.path} is ${problem.detail}, not a regular file; IPTABLES_LOG_PATH must name the kernel log file (e.g. /var/log/kern.log); waiting for it to become one`,
        };
      case 'unreadable':
        return {
          level: 'error',
          message: `cannot read ${this.path}: ${problem.detail}; the agent needs read access to it; retrying`,
        };
      case 'read_failed':
        return { level: 'error', message: `reading ${this.path} failed: ${problem.detail}; retrying` };
    }
  }

  /** Waits for a change hint, the poll interval, or stop. */
  private nextChange(): Promise<void> {
    if (this.changed || this.stopping) {
      this.changed = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.wake?.(), this.pollIntervalMs);
      this.wake = () => {
        clearTimeout(timer);
        this.wake = null;
        this.changed = false;
        resolve();
      };
    });
  }

  /** A change hint (fs.watch, rotation, stop): the loop looks again without waiting for the poll. */
  private markChanged(): void {
    this.changed = true;
    this.wake?.();
  }

  private watchDirectory(): void {
    if (this.directoryWatcher !== null || this.stopping) return;
    this.directoryWatcher = this.watch(this.directory, (name) => name === null || name === this.fileName);
  }

  /** fs.watch as a hint only: a watcher that cannot start (or fails later) leaves the poll to do its work. */
  private watch(target: string, relevant: (name: string | null) => boolean): FSWatcher | null {
    let watcher: FSWatcher;
    try {
      watcher = watch(target, (_event, name) => {
        if (relevant(name)) this.markChanged();
      });
    } catch {
      return null;
    }
    watcher.on('error', () => {
      watcher.close();
      if (this.directoryWatcher === watcher) this.directoryWatcher = null;
      if (this.fileWatcher === watcher) this.fileWatcher = null;
      this.markChanged();
    });
    return watcher;
  }

  private closeFileWatcher(): void {
    this.fileWatcher?.close();
    this.fileWatcher = null;
  }

  private closeWatchers(): void {
    this.closeFileWatcher();
    this.directoryWatcher?.close();
    this.directoryWatcher = null;
  }
}
