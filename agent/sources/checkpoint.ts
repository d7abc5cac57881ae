import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../log.ts';

/**
 * A small JSON state file written atomically (temp file + rename), so a crash leaves either the old
 * or the new checkpoint, never a torn one. An unwritable directory costs one warning, not the agent.
 */
export class Checkpoint<T> {
  private readonly directory: string;
  private readonly file: string;
  private readonly log: Logger;
  private disabled = false;

  constructor(directory: string, name: string, log: Logger) {
    this.directory = directory;
    this.file = join(directory, name);
    this.log = log;
  }

  async load(isValid: (value: unknown) => value is T): Promise<T | null> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        this.log.warn({ err, file: this.file }, 'cannot read checkpoint; starting without it');
      }
      return null;
    }
    try {
      const value: unknown = JSON.parse(text);
      if (isValid(value)) return value;
    } catch {
      // fall through: a corrupt checkpoint is reported like an invalid one
    }
    this.log.warn({ file: this.file }, 'checkpoint is not valid; starting without it');
    return null;
  }

  async save(value: T): Promise<void> {
    if (this.disabled) return;
    const tmp = `${this.file}.${process.pid}.tmp`;
    try {
      await mkdir(this.directory, { recursive: true });
      await writeFile(tmp, JSON.stringify(value));
      await rename(tmp, this.file);
    } catch (err) {
      this.disabled = true;
      this.log.warn(
        { err, directory: this.directory },
        'checkpoint directory is not writable; running without checkpoints (set CHECKPOINT_DIRECTORY)',
      );
    }
  }
}
