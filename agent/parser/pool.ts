/**
 * Worker threads that parse blocks of lines, so that a large file uses every core. Blocks are
 * dispatched round-robin; each block's result comes back through its own promise, so the caller
 * keeps output in input order simply by awaiting the promises in order.
 */

import { Worker } from 'node:worker_threads';
import type { BlockResult } from './block.ts';

// tsc rewrites `.ts` import specifiers to `.js` in dist/ but leaves `new URL()` strings alone: the worker
// is the file next to this one with this module's own extension (.ts from sources, .js when compiled).
const OWN_EXTENSION = import.meta.url.slice(import.meta.url.lastIndexOf('.'));
const WORKER_URL = new URL(`./pool-worker${OWN_EXTENSION}`, import.meta.url);

/** What a worker needs to build its BlockParser; `now` is always the worker's own clock. */
export interface PoolOptions {
  prefix: string;
  timeLayout: string | null;
  printDrops: boolean;
}

/**
 * Parsing allocates a drop or two per line. With V8's default young generation, two workers scavenge
 * so often that their parallel GC tasks contend for the cores, and two workers were barely faster
 * than one; a larger young generation makes scavenges rare.
 */
const YOUNG_GENERATION_MB = 96;

export interface BlockRequest {
  id: number;
  bytes: Uint8Array;
}

export interface BlockReply {
  id: number;
  result: BlockResult;
}

interface Pending {
  resolve: (result: BlockResult) => void;
  reject: (err: Error) => void;
}

export class ParserPool {
  private readonly workers: Worker[];
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;

  constructor(size: number, options: PoolOptions) {
    this.workers = Array.from({ length: size }, () => this.startWorker(options));
  }

  get size(): number {
    return this.workers.length;
  }

  private startWorker(options: PoolOptions): Worker {
    const worker = new Worker(WORKER_URL, {
      workerData: options,
      resourceLimits: { maxYoungGenerationSizeMb: YOUNG_GENERATION_MB },
    });
    worker.on('message', ({ id, result }: BlockReply) => {
      this.pending.get(id)?.resolve(result);
      this.pending.delete(id);
    });
    worker.on('error', (err) => this.failAll(err));
    return worker;
  }

  private failAll(err: Error): void {
    for (const { reject } of this.pending.values()) reject(err);
    this.pending.clear();
  }

  /** Parses a block of whole lines (ending with a newline); the bytes are copied, so the caller may reuse them. */
  parse(block: Buffer): Promise<BlockResult> {
    const id = this.nextId++;
    const bytes = new Uint8Array(block);
    const worker = this.workers[id % this.workers.length]!;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.postMessage({ id, bytes } satisfies BlockRequest, [bytes.buffer]);
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((worker) => worker.terminate()));
  }
}
