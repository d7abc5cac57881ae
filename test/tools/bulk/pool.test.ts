import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BlockParser } from '../../../agent/tools/bulk/block.ts';
import { ParserPool } from '../../../agent/tools/bulk/pool.ts';
import { ICMP6, kernLine, TCP4, UDP4 } from '../../parser/samples.ts';
import { tempDir } from '../../support/journal.ts';

const options = { prefix: 'calico-packet', timeLayout: null };

/** Drops, unrelated lines and invalid lines. */
function fileText(lines: number): string {
  const text = Array.from({ length: lines }, (_, i) => {
    if (i % 7 === 0) return `Apr 05 20:41:42 node-1 kernel: eth0: link up ${i}`;
    if (i % 50 === 1) return kernLine(UDP4.replace('SPT=41000', 'SPT=99999'));
    return kernLine([TCP4, UDP4, ICMP6][i % 3]!.replace('LEN=', `LEN=${i}`));
  });
  return `${text.join('\n')}\n`;
}

describe('ParserPool', () => {
  const pool = new ParserPool(2, { ...options, printDrops: true });
  let dir: string;
  beforeAll(async () => {
    dir = await tempDir('pool');
  });
  afterAll(async () => {
    await pool.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('gives, segment by segment and in order, what the parser gives in this thread', async () => {
    const path = join(dir, 'kern.log');
    const text = fileText(10_000);
    await writeFile(path, text);
    const bytes = Buffer.from(text);
    // Cut at arbitrary bytes: each segment holds the lines that start in it.
    const cuts = [0, 1, 300_000, 300_001, 1_000_000, Number.POSITIVE_INFINITY];
    const starts = cuts.slice(0, -1).map((start, k) => ({ path, start, end: cuts[k + 1]! }));
    const here = new BlockParser({ ...options, now: Date.now }, true);
    const firstLineAt = (offset: number): number => (offset === 0 ? 0 : bytes.indexOf(10, offset - 1) + 1);
    const expected = starts.map(({ start, end }) =>
      here.lines(
        bytes.subarray(
          firstLineAt(start),
          end === Number.POSITIVE_INFINITY ? bytes.length : firstLineAt(end),
        ),
      ),
    );

    const results = await Promise.all(starts.map((segment) => pool.parse(segment)));

    expect(results).toEqual(expected);
    expect(results.map((result) => result.lines).reduce((a, b) => a + b)).toBe(10_000);
    expect(results[0]!.lines).toBe(1);
    expect(results[1]!.invalid[0]).toMatchObject({ reason: 'bad_port' });
    expect(results.at(-1)!.output).toContain('"length":9999');
  });

  it('sends each segment to the worker with the fewest in hand, so one slow segment holds up no other', async () => {
    const big = join(dir, 'big.log');
    const small = join(dir, 'small.log');
    await writeFile(big, fileText(50_000));
    await writeFile(small, fileText(10));
    const finished: string[] = [];
    const bigDone = pool.parse({ path: big, start: 0, end: Number.POSITIVE_INFINITY }).then(() => {
      finished.push('big');
    });
    // Each small segment is sent while the big one is in hand: the idle worker gets every one of them
    // (taking turns would queue every second one behind the big segment).
    for (let k = 0; k < 4; k++) {
      await pool.parse({ path: small, start: 0, end: Number.POSITIVE_INFINITY });
      finished.push(`small ${k}`);
    }
    await bigDone;
    expect(finished).toEqual(['small 0', 'small 1', 'small 2', 'small 3', 'big']);
  });

  it('rejects the segment of a file it cannot read, and goes on with the next', async () => {
    const missing = pool.parse({ path: '/nonexistent/kern.log', start: 0, end: 100 });
    await expect(missing).rejects.toThrow(/ENOENT/);
    const path = join(dir, 'one.log');
    await writeFile(path, fileText(3));
    await expect(pool.parse({ path, start: 0, end: Number.POSITIVE_INFINITY })).resolves.toMatchObject({
      lines: 3,
    });
  });
});
