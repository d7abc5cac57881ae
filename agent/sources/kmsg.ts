/**
 * The kernel's ring buffer, /dev/kmsg, as a log source: for nodes with neither a journal nor a syslog file
 * (Talos Linux, minimal images), as node-problem-detector reads it.
 *
 * Facts about /dev/kmsg this relies on (Documentation/ABI/testing/dev-kmsg):
 * - Each open file starts at the oldest record still in the buffer; each read(2) returns exactly one record,
 *   EAGAIN when there is none newer (the file is opened O_NONBLOCK), EPIPE when the records after the last
 *   one read were overwritten (the next read returns the oldest one kept), and EINVAL without moving on when
 *   the buffer is smaller than the record.
 * - Sequence numbers count every record since boot, so a jump is the number of records lost; they start
 *   again at 0 after a reboot, so the checkpoint holds the boot ID beside the sequence number.
 * - Only the kernel's own records have facility 0: a process writing to /dev/kmsg gets facility 1 (user), or
 *   another it names, never 0. Other records are ignored and counted, as the journal source ignores entries
 *   whose transport is not the kernel's.
 * - A record is visible to readers once it ends with a newline (or the next record is logged).
 *
 * Reading: records are read with synchronous read(2) calls on the non-blocking file, a batch at a time, and
 * when the device has nothing new the source looks again after POLL_MS. A blocking read would hold a libuv
 * thread until the kernel logs again, and nothing can interrupt it, so stop() would wait for the next
 * kernel message; a non-blocking read never waits, so one costs a system call of microseconds and the
 * event loop is never held longer than a batch. Idle, the source makes POLL_MS⁻¹ reads a second.
 *
 * Start position. The checkpoint is the sequence number of the last record whose batch, and every earlier
 * one, the handler has settled (see source.ts), with the boot ID.
 * - Same boot: records up to it are read and skipped; if the oldest one kept is further on, the records in
 *   between were overwritten while the agent was not reading them, and are counted as lost.
 * - No checkpoint, or one from another boot: the whole buffer is read, and records logged before
 *   PACKET_DROP_EXPIRATION_MINUTES ago are skipped, as the journal source reads back that long on a first
 *   start.
 */

import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep, setImmediate as yieldToLoop } from 'node:timers/promises';
import { type Logger, ThrottledWarning } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import type { LogRecord } from '../types.ts';
import { type CheckpointDirectory, ThrottledCheckpoint } from './checkpoint.ts';
import { kernelLogRecord, kmsgSequence, parseKmsgRecord } from './kmsg-record.ts';
import { handOver, type LogSource, NOT_STARTED, type RecordHandler, type SourceProgress } from './source.ts';

const CHECKPOINT_FILE = 'kmsg.position.json';
const CHECKPOINT_INTERVAL_MS = 1000;
/** How soon after the device had nothing new it is read again: the delay a new drop may wait. */
const POLL_MS = 200;
const DEFAULT_RETRY_MS = 2000;
/** Twice the longest record any kernel formats (CONSOLE_EXT_LOG_MAX, 8 KiB). */
const READ_BYTES = 16 * 1024;
/** A record longer than READ_BYTES is read with a buffer doubled up to this; past it the device is at fault. */
const MAX_READ_BYTES = 1 << 20;
/** Records per batch: what the event loop waits for at most between two of its turns. */
const BATCH_RECORDS = 1000;
const BOOT_ID = '/proc/sys/kernel/random/boot_id';
/** openKmsgDevice's error code for a path that is not a character device. */
export const NOT_A_CHARACTER_DEVICE = 'ENOTCHR';

/** An open /dev/kmsg: `read` is one read(2), returning the record's length or throwing its errno. */
export interface KmsgDevice {
  read(buffer: Buffer): number;
  close(): void;
}

/** Opens the device read-only and non-blocking; throws the errno, or NOT_A_CHARACTER_DEVICE. */
export function openKmsgDevice(path: string): KmsgDevice {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  let isDevice: boolean;
  try {
    isDevice = fstatSync(fd).isCharacterDevice();
  } catch (err) {
    closeSync(fd);
    throw err;
  }
  if (!isDevice) {
    closeSync(fd);
    throw Object.assign(new Error(`${path} is not a character device`), { code: NOT_A_CHARACTER_DEVICE });
  }
  return {
    read: (buffer) => readSync(fd, buffer, 0, buffer.length, null),
    close: () => closeSync(fd),
  };
}

/** Records of one open device, one read each, through its overruns and records longer than the buffer. */
export class KmsgReader {
  private readonly device: KmsgDevice;
  private buffer = Buffer.allocUnsafe(READ_BYTES);
  /** Set by an EPIPE: records were overwritten since the last one read. */
  overrun = false;

  constructor(device: KmsgDevice) {
    this.device = device;
  }

  /** The next record as latin1 text (a character per byte), or null when the device has none newer. */
  next(): string | null {
    for (;;) {
      let length: number;
      try {
        length = this.device.read(this.buffer);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EAGAIN') return null;
        if (code === 'EPIPE') {
          this.overrun = true;
          continue;
        }
        if (code === 'EINVAL' && this.buffer.length < MAX_READ_BYTES) {
          this.buffer = Buffer.allocUnsafe(this.buffer.length * 2);
          continue;
        }
        throw err;
      }
      return length > 0 ? this.buffer.toString('latin1', 0, length) : null;
    }
  }

  close(): void {
    this.device.close();
  }
}

export interface KmsgSourceOptions {
  /** KMSG_PATH. */
  path: string;
  checkpoints: CheckpointDirectory;
  /** Without a checkpoint of this boot, records older than this are skipped. */
  expirationMs: number;
  /** The node's name: every record's host, as the journal's _HOSTNAME is. */
  host: string;
  log: Logger;
  metrics: Metrics;
  /** Opens the device: openKmsgDevice, unless a stand-in plays a kernel whose buffer wraps. */
  open?: (path: string) => KmsgDevice;
  /** How soon a device that cannot be opened or read is tried again; 2 s by default. */
  retryMs?: number;
  now?: () => number;
  /**
   * When the kernel's clock read zero, epoch ms: now less CLOCK_MONOTONIC, which like the kernel's printk
   * clock does not count time suspended (/proc/uptime does).
   */
  bootTime?: () => number;
}

interface Position {
  bootId: string;
  sequence: number;
}

function isPosition(value: unknown): value is Position {
  if (typeof value !== 'object' || value === null) return false;
  const { bootId, sequence } = value as Partial<Record<keyof Position, unknown>>;
  return typeof bootId === 'string' && Number.isSafeInteger(sequence) && (sequence as number) >= 0;
}

/** When the kernel's clock read zero, epoch ms; see KmsgSourceOptions.bootTime. */
export function monotonicBootTime(): number {
  return Date.now() - Number(process.hrtime.bigint() / 1_000_000n);
}

type Problem =
  | { kind: 'device_missing' }
  | { kind: 'not_permitted'; detail: string }
  | { kind: 'not_a_character_device' }
  | { kind: 'open_failed'; detail: string }
  | { kind: 'read_failed'; detail: string };

function detailOf(err: unknown): string {
  const { code, message } = err as NodeJS.ErrnoException;
  return code ?? message;
}

function openProblem(err: unknown): Problem {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT' || code === 'ENOTDIR') return { kind: 'device_missing' };
  if (code === 'EPERM' || code === 'EACCES') return { kind: 'not_permitted', detail: code };
  if (code === NOT_A_CHARACTER_DEVICE) return { kind: 'not_a_character_device' };
  return { kind: 'open_failed', detail: detailOf(err) };
}

/** Follows /dev/kmsg; see the top of this file. */
export class KmsgSource implements LogSource {
  private readonly path: string;
  private readonly expirationMs: number;
  private readonly host: string;
  private readonly log: Logger;
  private readonly metrics: Metrics;
  private readonly open: (path: string) => KmsgDevice;
  private readonly retryMs: number;
  private readonly now: () => number;
  private readonly bootTime: () => number;
  private readonly checkpoint: ThrottledCheckpoint<Position>;
  private readonly malformedWarning: ThrottledWarning;
  private readonly stopped = new AbortController();

  private bootId = '';
  /** Sequence number of the last record taken (handed over or skipped); null before the first. */
  private last: number | null = null;
  /** Records logged before this (epoch ms) are skipped: set on a start without this boot's checkpoint. */
  private skipBefore: number | null = null;
  /** Records read, whatever became of them (stall detection). */
  private taken = 0;
  private problemText: string | null = NOT_STARTED;
  /** The problem last logged, so that a lasting one is logged once, not once per retry. */
  private reported: string | null = null;
  private running: Promise<void> | null = null;
  private stopping = false;

  constructor(options: KmsgSourceOptions) {
    this.path = options.path;
    this.expirationMs = options.expirationMs;
    this.host = options.host;
    this.log = options.log;
    this.metrics = options.metrics;
    this.open = options.open ?? openKmsgDevice;
    this.retryMs = options.retryMs ?? DEFAULT_RETRY_MS;
    this.now = options.now ?? Date.now;
    this.bootTime = options.bootTime ?? monotonicBootTime;
    this.checkpoint = new ThrottledCheckpoint(
      options.checkpoints.checkpoint(CHECKPOINT_FILE),
      CHECKPOINT_INTERVAL_MS,
    );
    this.malformedWarning = new ThrottledWarning(options.log, 'skipped malformed /dev/kmsg records');
  }

  run(handle: RecordHandler): Promise<void> {
    if (this.running !== null) throw new Error('KmsgSource.run called twice');
    this.running = this.loop(handle);
    return this.running;
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.stopped.abort();
    await this.running;
    await this.checkpoint.flush();
  }

  problem(): string | null {
    return this.problemText;
  }

  /** Unread: a look of its own at the device finds a record after the last one taken. */
  async progress(): Promise<SourceProgress> {
    const taken = this.taken;
    if (this.problemText !== null || this.stopping) return { taken, unread: false };
    return { taken, unread: await this.hasUnread() };
  }

  private async hasUnread(): Promise<boolean> {
    let reader: KmsgReader;
    try {
      reader = new KmsgReader(this.open(this.path));
    } catch {
      return false;
    }
    const last = this.last;
    try {
      // The whole buffer at worst (thousands of records): a batch at a time, so the event loop keeps turning.
      for (;;) {
        for (let n = 0; n < BATCH_RECORDS; n++) {
          const text = reader.next();
          if (text === null) return false;
          const sequence = kmsgSequence(text);
          if (sequence !== null && (last === null || sequence > last)) return true;
        }
        await yieldToLoop();
      }
    } catch {
      return false;
    } finally {
      reader.close();
    }
  }

  private async loop(handle: RecordHandler): Promise<void> {
    await this.resumePoint();
    while (!this.stopping) {
      const reader = await this.openDevice();
      if (reader === null) break;
      try {
        await this.follow(reader, handle);
      } catch (err) {
        this.report({ kind: 'read_failed', detail: detailOf(err) });
      } finally {
        reader.close();
      }
      await this.pause(this.retryMs);
    }
  }

  private async resumePoint(): Promise<void> {
    this.bootId = (await readFile(BOOT_ID, 'utf8').catch(() => '')).trim();
    const saved = await this.checkpoint.load(isPosition);
    if (saved !== null && saved.bootId === this.bootId) {
      this.last = saved.sequence;
      return;
    }
    if (saved !== null) {
      this.log.info(
        { path: this.path },
        'the checkpoint is of an earlier boot; reading the ring buffer from its start',
      );
    }
    this.skipBefore = this.now() - this.expirationMs;
  }

  /** Opens the device, waiting (and saying why) while it cannot be; null when the source stopped. */
  private async openDevice(): Promise<KmsgReader | null> {
    while (!this.stopping) {
      try {
        const reader = new KmsgReader(this.open(this.path));
        this.problemText = null;
        this.reported = null;
        this.log.info({ path: this.path, after: this.last }, 'reading kernel messages');
        return reader;
      } catch (err) {
        this.report(openProblem(err));
      }
      await this.pause(this.retryMs);
    }
    return null;
  }

  private async follow(reader: KmsgReader, handle: RecordHandler): Promise<void> {
    while (!this.stopping) {
      const before = this.taken;
      const { records, drained } = this.readBatch(reader);
      if (this.taken > before) await this.deliver(records, handle);
      if (drained) await this.pause(POLL_MS);
    }
  }

  private readBatch(reader: KmsgReader): { records: LogRecord[]; drained: boolean } {
    const records: LogRecord[] = [];
    const bootTime = this.bootTime();
    for (let n = 0; n < BATCH_RECORDS; n++) {
      const text = reader.next();
      if (text === null) return { records, drained: true };
      this.taken++;
      const record = this.take(text, bootTime, reader);
      if (record !== null) records.push(record);
    }
    return { records, drained: false };
  }

  /** The record for the parser, or null when it is skipped (and counted, if it is not the kernel's). */
  private take(text: string, bootTime: number, reader: KmsgReader): LogRecord | null {
    const parsed = parseKmsgRecord(text);
    if (parsed.kind === 'malformed') {
      this.metrics.sourceErrors.inc({ reason: 'kmsg_malformed' });
      this.malformedWarning.note({ path: this.path, reason: parsed.reason });
      return null;
    }
    const { record } = parsed;
    if (this.last !== null && record.sequence <= this.last) return null;
    if (this.last !== null && record.sequence > this.last + 1) {
      this.lost(record.sequence - this.last - 1, reader.overrun);
    }
    reader.overrun = false;
    this.last = record.sequence;
    const kernel = kernelLogRecord(record, bootTime, this.host);
    if (kernel === null) {
      this.metrics.sourceErrors.inc({ reason: 'untrusted_facility' });
      return null;
    }
    return this.skipBefore !== null && kernel.time! < this.skipBefore ? null : kernel;
  }

  private lost(count: number, overrun: boolean): void {
    this.metrics.kmsgRecordsLost.inc(count);
    this.metrics.sourceErrors.inc({ reason: 'records_lost' });
    this.log.warn(
      { path: this.path, lost: count, after: this.last },
      overrun
        ? 'the kernel ring buffer overwrote records before they were read'
        : 'the kernel ring buffer overwrote records while the agent was not reading',
    );
  }

  /** Hands the records over and waits for the handler; the checkpoint moves past them once they settle. */
  private async deliver(records: readonly LogRecord[], handle: RecordHandler): Promise<void> {
    const { metrics, log, now } = this;
    const settled = (await handOver(records, handle, { metrics, log, now, input: 'kernel ring buffer' }))
      ?.settled;
    if (this.last !== null) this.checkpoint.update({ bootId: this.bootId, sequence: this.last }, settled);
  }

  private pause(ms: number): Promise<void> {
    return sleep(ms, undefined, { signal: this.stopped.signal }).catch(() => {});
  }

  /** Logs and counts a problem once, until another one (or a successful open) replaces it. */
  private report(problem: Problem): void {
    const { level, message } = this.describe(problem);
    this.problemText = message;
    const key = `${problem.kind}:${'detail' in problem ? problem.detail : ''}`;
    if (key === this.reported) return;
    this.reported = key;
    this.metrics.sourceErrors.inc({ reason: problem.kind });
    this.log[level]({ path: this.path }, message);
  }

  private describe(problem: Problem): { level: 'warn' | 'error'; message: string } {
    switch (problem.kind) {
      case 'device_missing':
        return {
          level: 'warn',
          message: `${this.path} does not exist (mount the host's /dev/kmsg); waiting for it to appear`,
        };
      case 'not_permitted':
        return {
          level: 'error',
          message: `cannot open ${this.path}: ${problem.detail}; a container needs the device allowed (privileged, or a device plugin), and CAP_SYSLOG where kernel.dmesg_restrict=1; retrying`,
        };
      case 'not_a_character_device':
        return {
          level: 'error',
          message: `${this.path} is not a character device; KMSG_PATH must name the kernel's /dev/kmsg; waiting for it to become one`,
        };
      case 'open_failed':
        return { level: 'error', message: `cannot open ${this.path}: ${problem.detail}; retrying` };
      case 'read_failed':
        return { level: 'error', message: `reading ${this.path} failed: ${problem.detail}; reopening it` };
    }
  }
}
