import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../log.ts';

function reason(err: unknown): string {
  const { code, message } = err as NodeJS.ErrnoException;
  return code ?? message;
}

/**
 * CHECKPOINT_DIRECTORY, made once per process: the agent keeps several checkpoints in it, and a directory
 * that names a file (or cannot be written) is one problem, worth one warning however many use it.
 */
export class CheckpointDirectory {
  readonly path: string;
  readonly log: Logger;
  private reported = false;

  constructor(path: string, log: Logger) {
    this.path = path;
    this.log = log;
  }

  checkpoint<T>(name: string): Checkpoint<T> {
    return new Checkpoint<T>(this, name);
  }

  /** Called by a checkpoint that found the directory unusable. */
  unusable(err: unknown): void {
    if (this.reported) return;
    this.reported = true;
    this.log.warn(
      { directory: this.path, reason: reason(err) },
      'checkpoint directory is not a writable directory; running without checkpoints (set CHECKPOINT_DIRECTORY)',
    );
  }
}

/**
 * A small JSON state file written atomically (temp file + rename), so a crash leaves either the old
 * or the new checkpoint, never a torn one. An unwritable directory costs one warning, not the agent.
 */
export class Checkpoint<T> {
  private readonly directory: CheckpointDirectory;
  private readonly file: string;
  private disabled = false;

  constructor(directory: CheckpointDirectory, name: string) {
    this.directory = directory;
    this.file = join(directory.path, name);
  }

  async load(isValid: (value: unknown) => value is T): Promise<T | null> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // Not a directory: CHECKPOINT_DIRECTORY (or a parent) is a file, so no checkpoint can be saved either.
      if (code === 'ENOTDIR') this.disable(err);
      else if (code !== 'ENOENT') {
        this.directory.log.warn(
          { file: this.file, reason: reason(err) },
          'cannot read checkpoint; starting without it',
        );
      }
      return null;
    }
    try {
      const value: unknown = JSON.parse(text);
      if (isValid(value)) return value;
    } catch {
      // fall through: a corrupt checkpoint is reported like an invalid one
    }
    this.directory.log.warn({ file: this.file }, 'checkpoint is not valid; starting without it');
    return null;
  }

  async save(value: T): Promise<void> {
    if (this.disabled) return;
    const tmp = `${this.file}.${process.pid}.tmp`;
    try {
      await mkdir(this.directory.path, { recursive: true });
      await writeFile(tmp, JSON.stringify(value));
      await rename(tmp, this.file);
    } catch (err) {
      this.disable(err);
    }
  }

  private disable(err: unknown): void {
    this.disabled = true;
    this.directory.unusable(err);
  }
}

/**
 * Batches waiting to settle at most. Past it, a new batch joins the last one: that entry takes the new
 * value and waits for both batches' promises, so a writer that falls far behind costs no more memory, and
 * the checkpoint only lags further (never passes an unsettled batch).
 */
export const MAX_UNSETTLED = 10_000;

/** A value that waits for its batch, and every batch merged into it, to settle. */
interface Unsettled<T> {
  value: T;
  /** The batches' promises not yet settled. */
  open: number;
  /** The last promise joined, so that batches sharing one (one writer receipt) cost one entry. */
  last: Promise<void>;
}

/**
 * Passes on the newest value whose batch and every earlier one are settled. Batches settle out of order
 * (a later one may hold nothing to write), and a restart resumes from what is passed on: it must not pass
 * a batch still being written. A rejected promise counts as settled: the writer gave the batch up for
 * good, and reading it again would not help.
 */
export class SettledPositions<T> {
  private readonly onSettled: (value: T) => void;
  private readonly unsettled: Unsettled<T>[] = [];

  constructor(onSettled: (value: T) => void) {
    this.onSettled = onSettled;
  }

  /** The value after a batch, given in reading order; without `settled`, the batch counts as settled now. */
  add(value: T, settled?: Promise<void>): void {
    let tail = this.unsettled.at(-1);
    if (settled === undefined) {
      // Waiting behind the tail, this value is due exactly when the tail's is: it replaces it.
      if (tail === undefined) this.onSettled(value);
      else tail.value = value;
      return;
    }
    if (tail === undefined || (tail.last !== settled && this.unsettled.length < MAX_UNSETTLED)) {
      tail = { value, open: 0, last: settled };
      this.unsettled.push(tail);
    } else {
      tail.value = value;
      if (tail.last === settled) return;
      tail.last = settled;
    }
    const entry = tail;
    entry.open++;
    const done = () => {
      entry.open--;
      this.release();
    };
    settled.then(done, done);
  }

  /** Passes on the newest of the leading entries that are settled, once. */
  private release(): void {
    let newest: Unsettled<T> | undefined;
    while (this.unsettled[0]?.open === 0) newest = this.unsettled.shift();
    if (newest !== undefined) this.onSettled(newest.value);
  }
}

/**
 * Keeps a checkpoint near the latest value whose batch and every earlier one are settled, while writing
 * it at most once per interval; writes run one after another because they share the temporary file.
 */
export class ThrottledCheckpoint<T> {
  private readonly checkpoint: Checkpoint<T>;
  private readonly intervalMs: number;
  private readonly positions = new SettledPositions<T>((value) => this.keep(value));
  private latest: T | null = null;
  private savedText: string | null = null;
  private lastSaveAt = Number.NEGATIVE_INFINITY;
  private timer: NodeJS.Timeout | null = null;
  private saving: Promise<void> = Promise.resolve();

  constructor(checkpoint: Checkpoint<T>, intervalMs: number) {
    this.checkpoint = checkpoint;
    this.intervalMs = intervalMs;
  }

  async load(isValid: (value: unknown) => value is T): Promise<T | null> {
    const value = await this.checkpoint.load(isValid);
    this.savedText = JSON.stringify(value);
    return value;
  }

  /** Moves the checkpoint to `value` once `settled` (if given) and every earlier update's have settled. */
  update(value: T, settled?: Promise<void>): void {
    this.positions.add(value, settled);
  }

  private keep(value: T): void {
    this.latest = value;
    if (this.timer !== null) return;
    const wait = Math.max(0, this.lastSaveAt + this.intervalMs - performance.now());
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.queueSave();
    }, wait);
    this.timer.unref();
  }

  /** Saves the latest value now, and cancels the pending timed save. */
  flush(): Promise<void> {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    return this.queueSave();
  }

  private queueSave(): Promise<void> {
    this.saving = this.saving.then(() => this.save());
    return this.saving;
  }

  private async save(): Promise<void> {
    const value = this.latest;
    const text = JSON.stringify(value);
    if (value === null || text === this.savedText) return;
    this.lastSaveAt = performance.now();
    await this.checkpoint.save(value);
    this.savedText = text;
  }
}
