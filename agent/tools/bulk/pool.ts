/**
 * Worker threads that parse segments of large files, so that a large file uses every core. Each
 * segment goes to the worker with the fewest segments in hand, so a worker slowed by anything else on
 * the machine gets fewer and all finish close together; each segment's result comes back through its
 * own promise, so the caller keeps output in input order simply by awaiting the promises in order.
 */

import { Worker } from 'node:worker_threads';
import type { BlockResult } from './block.ts';
import type { Segment } from './segment.ts';

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

export interface SegmentRequest {
  id: number;
  segment: Segment;
}

/** A segment's result, or why its file could not be read. */
export type SegmentReply = { id: number; result: BlockResult } | { id: number; error: string };

interface Pending {
  resolve: (result: BlockResult) => void;
  reject: (err: Error) => void;
}

export class ParserPool {
  private readonly workers: Worker[];
  private readonly pending = new Map<number, Pending>();
  /** Segments sent to each worker and not yet answered. */
  private readonly load = new Map<Worker, number>();
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
    worker.on('message', (reply: SegmentReply) => {
      const pending = this.pending.get(reply.id);
      if (pending === undefined) return;
      this.pending.delete(reply.id);
      this.load.set(worker, this.load.get(worker)! - 1);
      if ('error' in reply) pending.reject(new Error(reply.error));
      else pending.resolve(reply.result);
    });
    worker.on('error', (err) => this.failAll(err));
    this.load.set(worker, 0);
    return worker;
  }

  private failAll(err: Error): void {
    for (const { reject } of this.pending.values()) reject(err);
    this.pending.clear();
    for (const worker of this.workers) this.load.set(worker, 0);
  }

  private leastLoaded(): Worker {
    let best = this.workers[0]!;
    for (const worker of this.workers) if (this.load.get(worker)! < this.load.get(best)!) best = worker;
    return best;
  }

  /** Parses the lines that start in the segment; rejects when the file cannot be read. */
  parse(segment: Segment): Promise<BlockResult> {
    const id = this.nextId++;
    const worker = this.leastLoaded();
    this.load.set(worker, this.load.get(worker)! + 1);
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.postMessage({ id, segment } satisfies SegmentRequest);
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((worker) => worker.terminate()));
  }
}
