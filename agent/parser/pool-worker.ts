/** Worker thread of ParserPool: decodes and parses the blocks it is sent, in the order sent. */

import module from 'node:module';
import { parentPort, workerData } from 'node:worker_threads';
import type { BlockReply, BlockRequest, PoolOptions } from './pool.ts';

// Each worker strips and compiles the parser's TypeScript again; Node's compile cache makes that a
// cache read from the second run on. Loaded after enabling it, hence the dynamic import.
module.enableCompileCache();
const { BlockParser } = await import('./block.ts');

const { prefix, timeLayout, printDrops } = workerData as PoolOptions;
const parser = new BlockParser({ prefix, timeLayout, now: Date.now }, printDrops);

parentPort!.on('message', ({ id, bytes }: BlockRequest) => {
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8');
  parentPort!.postMessage({ id, result: parser.lines(text) } satisfies BlockReply);
});
