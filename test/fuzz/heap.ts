/** Heap measurement after full collections, for the fuzz runs' memory bounds. */

import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

setFlagsFromString('--expose-gc');
// A fresh context created after the flag is set gets `gc`, without restarting the worker with --expose-gc.
const gc = runInNewContext('gc') as () => void;

/** Heap in use once garbage is collected (twice: the first pass may only queue finalisers). */
export function heapAfterGc(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

/** Bytes of ArrayBuffers (every Buffer) this thread holds once garbage is collected. */
export function arrayBuffersAfterGc(): number {
  gc();
  gc();
  return process.memoryUsage().arrayBuffers;
}

export const mebibytes = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(2)} MiB`;
