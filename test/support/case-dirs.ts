// Temporary directories for a test file: one root made before its tests and removed after them, and a
// fresh subdirectory of it for each case that asks.

import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';

export interface CaseDirs {
  /** The root, for paths that must not exist or must be empty. */
  root(): string;
  /** A new empty directory. */
  next(): Promise<string>;
}

export function caseDirs(prefix: string): CaseDirs {
  let root = '';
  let count = 0;
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), `${prefix}-`));
  });
  afterAll(() => rm(root, { recursive: true, force: true }));
  return {
    root: () => root,
    next: async () => {
      const dir = join(root, `case-${++count}`);
      await mkdir(dir);
      return dir;
    },
  };
}
