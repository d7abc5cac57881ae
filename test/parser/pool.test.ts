import { afterAll, describe, expect, it } from 'vitest';
import { BlockParser } from '../../agent/parser/block.ts';
import { ParserPool } from '../../agent/parser/pool.ts';
import { ICMP6, kernLine, TCP4, UDP4 } from './samples.ts';

const options = { prefix: 'calico-packet', timeLayout: null };

/** Blocks of whole lines with drops, unrelated lines and invalid lines, each block different. */
function blocks(count: number): Buffer[] {
  return Array.from({ length: count }, (_, b) => {
    const lines = Array.from({ length: 500 }, (_, i) => {
      if (i % 7 === 0) return `Apr 05 20:41:42 node-1 kernel: eth0: link up ${b}/${i}`;
      if (i % 50 === 1) return kernLine(UDP4.replace('SPT=41000', 'SPT=99999'));
      return kernLine([TCP4, UDP4, ICMP6][i % 3]!.replace('LEN=', `LEN=${b}${i}`));
    });
    return Buffer.from(`${lines.join('\n')}\n`);
  });
}

describe('ParserPool', () => {
  const pool = new ParserPool(2, { ...options, printDrops: true });
  afterAll(() => pool.close());

  it('gives, block by block and in order, what the parser gives in this thread', async () => {
    const input = blocks(20);
    const here = new BlockParser({ ...options, now: Date.now }, true);
    const results = await Promise.all(input.map((block) => pool.parse(block)));
    expect(results).toEqual(input.map((block) => here.lines(block.toString())));
    expect(results[3]!.invalid[0]).toMatchObject({ line: 2, reason: 'bad_port' });
    expect(results[19]!.output).toContain('"length":19499');
  });
});
