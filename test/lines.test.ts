import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BlockSplitter, forEachLine, MAX_LINE_LENGTH } from '../agent/lines.ts';
import { BlockParser } from '../agent/tools/bulk/block.ts';
import { kernLine, TCP4 } from './parser/samples.ts';

/** Feeds the chunks and collects every line of the blocks the splitter hands over, as strings. */
function readLines(chunks: readonly Buffer[], maxLineLength = 100): string[] {
  const splitter = new BlockSplitter(maxLineLength);
  const lines: string[] = [];
  const onBlock = (block: Buffer): void => {
    expect(block.at(-1)).toBe(10);
    forEachLine(block.toString('utf8'), maxLineLength, (text, start, end) =>
      lines.push(text.slice(start, end)),
    );
  };
  for (const chunk of chunks) splitter.push(chunk, onBlock);
  splitter.finish(onBlock);
  return lines;
}

/** Splits bytes at the given cut points. */
function cut(bytes: Buffer, points: readonly number[]): Buffer[] {
  const sorted = [...points].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let from = 0;
  for (const point of sorted) {
    chunks.push(bytes.subarray(from, point));
    from = point;
  }
  chunks.push(bytes.subarray(from));
  return chunks;
}

describe('BlockSplitter and forEachLine', () => {
  it('hands over complete lines and the last one without a newline', () => {
    expect(readLines([Buffer.from('a\nbb\n\nccc')])).toEqual(['a', 'bb', '', 'ccc']);
  });

  it('adds no empty line after a final newline', () => {
    expect(readLines([Buffer.from('a\nb\n')])).toEqual(['a', 'b']);
  });

  it('reads nothing from empty input', () => {
    expect(readLines([Buffer.alloc(0)])).toEqual([]);
  });

  it('joins lines split across chunks, multi-byte characters included, at every cut point', () => {
    const text = 'héllo wörld\n€uro\n\nline 🎉 four\nlast';
    const bytes = Buffer.from(text);
    for (let a = 0; a <= bytes.length; a++) {
      for (let b = a; b <= bytes.length; b += 3) {
        expect(readLines(cut(bytes, [a, b]))).toEqual(text.split('\n'));
      }
    }
  });

  it('cuts a line over the limit to one character more, wherever the chunks end', () => {
    const long = 'x'.repeat(250);
    const bytes = Buffer.from(`short\n${long}\nafter\n${long}`);
    for (const size of [1, 7, 64, 101, 1000]) {
      const chunks: Buffer[] = [];
      for (let i = 0; i < bytes.length; i += size) chunks.push(bytes.subarray(i, i + size));
      expect(readLines(chunks)).toEqual(['short', 'x'.repeat(101), 'after', 'x'.repeat(101)]);
    }
  });

  it('leaves a cut line too long for the parser, also when cut inside a character or before blanks', () => {
    const parser = new BlockParser({ prefix: 'calico-packet', timeLayout: null, now: Date.now }, false);
    // With and without one more byte before the filler, one of the two cuts falls inside a 2-byte 'é'.
    for (const filler of ['é', ' ', '\0']) {
      for (const shift of ['', 'x']) {
        const line = Buffer.from(`${kernLine(TCP4)} ${shift}${filler.repeat(20_000)}X\n`);
        const splitter = new BlockSplitter(MAX_LINE_LENGTH);
        const reasons: string[] = [];
        const onBlock = (block: Buffer): void => {
          const result = parser.lines(block);
          expect(result.drops).toBe(0);
          reasons.push(...result.invalid.map((invalid) => invalid.reason));
        };
        for (const chunk of [line.subarray(0, 100), line.subarray(100)]) splitter.push(chunk, onBlock);
        splitter.finish(onBlock);
        expect(reasons).toEqual(['too_long']);
      }
    }
  });

  it('keeps at most the limit of an endless line', () => {
    const splitter = new BlockSplitter(10);
    const blocks: Buffer[] = [];
    for (let i = 0; i < 1000; i++) splitter.push(Buffer.alloc(4096, 0x41), (block) => blocks.push(block));
    splitter.finish((block) => blocks.push(block));
    expect(blocks.map((block) => block.toString())).toEqual([`${'A'.repeat(11)}\n`]);
  });

  it('hands over one block per chunk that completes lines', () => {
    const splitter = new BlockSplitter(100);
    const blocks: string[] = [];
    const onBlock = (block: Buffer): number => blocks.push(block.toString());
    splitter.push(Buffer.from('a\nb'), onBlock);
    splitter.push(Buffer.from('c\nd\ne'), onBlock);
    splitter.push(Buffer.from('f'), onBlock);
    splitter.finish(onBlock);
    expect(blocks).toEqual(['a\n', 'bc\nd\n', 'ef\n']);
  });

  it('gives the same lines for any chunking of any input', () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.string({ maxLength: 30 }), fc.constant('\n'), fc.constant('\r\n')), {
          maxLength: 30,
        }),
        fc.array(fc.nat(), { maxLength: 6 }),
        (parts, points) => {
          const bytes = Buffer.from(parts.join(''));
          const whole = readLines([bytes], 1000);
          const split = readLines(
            cut(
              bytes,
              points.map((p) => p % (bytes.length + 1)),
            ),
            1000,
          );
          expect(split).toEqual(whole);
        },
      ),
      { numRuns: 3000 },
    );
  });
});
