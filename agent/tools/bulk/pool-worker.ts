/** Worker thread of ParserPool: reads and parses the segments it is sent, in the order sent. */

import module from 'node:module';
import { parentPort, workerData } from 'node:worker_threads';
import type { PoolOptions, SegmentReply, SegmentRequest } from './pool.ts';

// Each worker strips and compiles the parser's TypeScript again; Node's compile cache makes that a
// cache read from the second run on. Loaded after enabling it, hence the dynamic import.
module.enableCompileCache();
const { BlockParser } = await import('./block.ts');
const { SegmentReader } = await import('./segment.ts');

const { prefix, timeLayout, printDrops } = workerData as PoolOptions;
const parser = new BlockParser({ prefix, timeLayout, now: Date.now }, printDrops);
const reader = new SegmentReader();

function reply({ id, segment }: SegmentRequest): SegmentReply {
  try {
    return { id, result: parser.blocks(reader.blocks(segment)) };
  } catch (err) {
    return { id, error: err instanceof Error ? err.message : String(err) };
  }
}

parentPort!.on('message', (request: SegmentRequest) => {
  parentPort!.postMessage(reply(request));
});
