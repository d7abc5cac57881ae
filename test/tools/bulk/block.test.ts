import { describe, expect, it } from 'vitest';
import { BlockParser } from '../../../agent/tools/bulk/block.ts';
import { fileLineParser, kernLine, TCP4, UDP4 } from '../../parser/samples.ts';

const options = { prefix: 'calico-packet', timeLayout: null, now: Date.now };

describe('BlockParser', () => {
  it('parses a block far larger than one decoded piece as it parses each of its lines alone', () => {
    // Lines of varied lengths with 2- and 3-byte characters, so that piece ends fall everywhere;
    // a bad port every 97 lines checks that invalid lines keep their numbers across pieces.
    const lines = Array.from({ length: 3_000 }, (_, i) => {
      if (i % 97 === 5) return kernLine(UDP4.replace('SPT=41000', 'SPT=70000'));
      if (i % 5 === 0) return `Apr 05 20:41:42 node-1 kernel: wlan0: é€ ${'ü'.repeat(i % 300)}`;
      return kernLine(TCP4.replace('LEN=', `LEN=${i}`));
    });
    const block = Buffer.from(`${lines.join('\n')}\n`);
    expect(block.length).toBeGreaterThan(8 * 64 * 1024);

    const result = new BlockParser(options, true).lines(block);

    const fileLine = fileLineParser(options);
    const expected = lines.map(fileLine);
    expect(result.lines).toBe(lines.length);
    expect(result.drops).toBe(expected.filter((parsed) => parsed.kind === 'drop').length);
    expect(result.skipped).toBe(expected.filter((parsed) => parsed.kind === 'skip').length);
    expect(result.invalid.map((invalid) => invalid.line)).toEqual(
      expected.flatMap((parsed, i) => (parsed.kind === 'invalid' ? [i + 1] : [])),
    );
    const lengths = result.output
      .trimEnd()
      .split('\n')
      .map((json) => (JSON.parse(json) as { length: number }).length);
    expect(lengths).toEqual(
      expected.flatMap((parsed) => (parsed.kind === 'drop' ? [parsed.drop.length] : [])),
    );
  });
});
