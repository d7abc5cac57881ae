import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LineSplitter, type LineSplitterOptions, linesOf, MAX_LINE_LENGTH } from '../agent/lines.ts';
import { BlockParser } from '../agent/tools/bulk/block.ts';
import { kernLine, TCP4 } from './parser/samples.ts';

interface Split {
  lines: string[];
  offset: number;
}

/**
 * Pushes the chunks in order, through one reused buffer as the file readers do (so a block kept past
 * its push would show the next chunk's bytes), then finishes; every block must end with a newline.
 */
function split(chunks: readonly Buffer[], options: LineSplitterOptions = {}): Split {
  const splitter = new LineSplitter(options);
  const reused = Buffer.alloc(Math.max(0, ...chunks.map((c) => c.length)));
  const lines: string[] = [];
  const take = (blocks: readonly Buffer[]): void => {
    for (const block of blocks) expect(block.at(-1)).toBe(10);
    lines.push(...linesOf(blocks));
  };
  for (const chunk of chunks) {
    chunk.copy(reused);
    take(splitter.push(reused.subarray(0, chunk.length)));
    reused.fill(0x58);
  }
  const offset = splitter.offset;
  take(splitter.finish());
  return { lines, offset };
}

const readLines = (chunks: readonly Buffer[], maxLineBytes = 100): string[] =>
  split(chunks, { maxLineBytes }).lines;

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

function bytewise(stream: Buffer): Buffer[] {
  return Array.from({ length: stream.length }, (_, i) => stream.subarray(i, i + 1));
}

/** What the splitter must make of each line: its first maxLineBytes + 1 bytes when it is longer. */
function expectedLines(lines: readonly string[], maxLineBytes: number): string[] {
  return lines.map((line) =>
    Buffer.from(line)
      .subarray(0, maxLineBytes + 1)
      .toString('utf8'),
  );
}

const SAMPLE = Buffer.concat([
  Buffer.from('calico-packet: IN=eth0 SRC=10.0.0.1\n'),
  Buffer.from('crlf line\r\n'),
  Buffer.from('\n'),
  Buffer.from('multi-byte: é ü 日本 🎉\n'),
  Buffer.from(`${'x'.repeat(100)}\n`),
  Buffer.from([0x62, 0x61, 0x64, 0x20, 0xff, 0xfe, 0xc3, 0x0a]),
  Buffer.from('after the junk\n'),
  Buffer.from('unterminated é'),
]);

describe('LineSplitter', () => {
  it('hands over complete lines and the last one without a newline', () => {
    expect(readLines([Buffer.from('a\nbb\n\nccc')])).toEqual(['a', 'bb', '', 'ccc']);
  });

  it('adds no empty line after a final newline', () => {
    expect(readLines([Buffer.from('a\nb\n')])).toEqual(['a', 'b']);
  });

  it('reads nothing from empty input', () => {
    expect(readLines([Buffer.alloc(0)])).toEqual([]);
  });

  it('splits lines, keeps a CR for the parser to trim, cuts an over-long line and holds the unterminated tail', () => {
    const splitter = new LineSplitter({ maxLineBytes: 64 });
    expect(linesOf(splitter.push(SAMPLE))).toEqual([
      'calico-packet: IN=eth0 SRC=10.0.0.1',
      'crlf line\r',
      '',
      'multi-byte: é ü 日本 🎉',
      'x'.repeat(65),
      'bad \ufffd\ufffd\ufffd',
      'after the junk',
    ]);
    expect(splitter.offset).toBe(SAMPLE.lastIndexOf('\n') + 1);
    expect(linesOf(splitter.finish())).toEqual(['unterminated é']);
    expect(splitter.offset).toBe(SAMPLE.length);
  });

  it('gives the same lines and offsets for a chunk boundary at every byte', () => {
    const whole = split([SAMPLE], { maxLineBytes: 64 });
    expect(split(bytewise(SAMPLE), { maxLineBytes: 64 })).toEqual(whole);
    for (let i = 0; i <= SAMPLE.length; i++) {
      expect(split(cut(SAMPLE, [i]), { maxLineBytes: 64 })).toEqual(whole);
    }
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

  it('moves the offset past each newline and no further', () => {
    const splitter = new LineSplitter({ maxLineBytes: 64, offset: 1000 });
    expect(linesOf(splitter.push(Buffer.from('ab')))).toEqual([]);
    expect(splitter.offset).toBe(1000);
    expect(linesOf(splitter.push(Buffer.from('c\nde')))).toEqual(['abc']);
    expect(splitter.offset).toBe(1004);
    expect(linesOf(splitter.push(Buffer.from('\n')))).toEqual(['de']);
    expect(splitter.offset).toBe(1007);
  });

  it('keeps a line of exactly maxLineBytes (a CR counted) and cuts one byte more to maxLineBytes + 1', () => {
    const exact = 'a'.repeat(63);
    const lines = readLines([Buffer.from(`${exact}\r\n${'b'.repeat(64)}\n${'c'.repeat(66)}\nend\n`)], 64);
    expect(lines).toEqual([`${exact}\r`, 'b'.repeat(64), 'c'.repeat(65), 'end']);
  });

  it('cuts a line over the limit to one byte more, wherever the chunks end', () => {
    const long = 'x'.repeat(250);
    const bytes = Buffer.from(`short\n${long}\nafter\n${long}`);
    for (const size of [1, 7, 64, 101, 1000]) {
      const chunks: Buffer[] = [];
      for (let i = 0; i < bytes.length; i += size) chunks.push(bytes.subarray(i, i + size));
      expect(readLines(chunks)).toEqual(['short', 'x'.repeat(101), 'after', 'x'.repeat(101)]);
    }
  });

  it('cuts by bytes, also inside a character, the same wherever the chunks end', () => {
    // 'é' is 2 bytes, '€' 3: the 11th byte of the second and fourth lines is part of a character.
    const bytes = Buffer.from(`${'é'.repeat(5)}\n${'é'.repeat(20)}\nx${'é'.repeat(20)}\n${'€'.repeat(4)}\n`);
    const whole = readLines([bytes], 10);
    expect(whole).toEqual([
      'é'.repeat(5),
      `${'é'.repeat(5)}\ufffd`,
      `x${'é'.repeat(5)}`,
      `${'€'.repeat(3)}\ufffd`,
    ]);
    for (let i = 0; i <= bytes.length; i++) expect(readLines(cut(bytes, [i]), 10)).toEqual(whole);
    expect(readLines(bytewise(bytes), 10)).toEqual(whole);
  });

  it('hands over an over-long line once however many chunks it span, offsets counting all of it', () => {
    const splitter = new LineSplitter({ maxLineBytes: 10, offset: 5 });
    expect(linesOf(splitter.push(Buffer.from('ok\n123456')))).toEqual(['ok']);
    for (let i = 0; i < 100; i++) expect(splitter.push(Buffer.from('7890'))).toEqual([]);
    expect(splitter.offset).toBe(8);
    expect(linesOf(splitter.push(Buffer.from('tail\nnext\n')))).toEqual(['12345678907', 'next']);
    expect(splitter.offset).toBe(5 + 3 + 6 + 400 + 10);
  });

  it('keeps at most the limit of an endless line', () => {
    const splitter = new LineSplitter({ maxLineBytes: 10 });
    const blocks: Buffer[] = [];
    for (let i = 0; i < 1000; i++) blocks.push(...splitter.push(Buffer.alloc(4096, 0x41)));
    blocks.push(...splitter.finish());
    expect(blocks.map((block) => block.toString())).toEqual([`${'A'.repeat(11)}\n`]);
  });

  it('leaves a cut line too long for the parser, also when cut inside a character or before blanks', () => {
    const parser = new BlockParser({ prefix: 'calico-packet', timeLayout: null, now: Date.now }, false);
    // With and without one more byte before the filler, one of the two cuts falls inside a 2-byte 'é'.
    for (const filler of ['é', ' ', '\0', '\r']) {
      for (const shift of ['', 'x']) {
        const line = Buffer.from(`${kernLine(TCP4)} ${shift}${filler.repeat(20_000)}X\n`);
        // In one chunk (cut out of a block) and across two (cut as it is carried over).
        for (const chunks of [[line], [line.subarray(0, 100), line.subarray(100)]]) {
          const splitter = new LineSplitter();
          const blocks = [...chunks.flatMap((chunk) => splitter.push(chunk)), ...splitter.finish()];
          const result = parser.blocks(blocks);
          expect(result.drops).toBe(0);
          expect(result.invalid.map((invalid) => invalid.reason)).toEqual(['too_long']);
          expect(Buffer.concat(blocks).length).toBe(MAX_LINE_LENGTH + 2);
        }
      }
    }
  });

  it('hands over whole lines as views of the chunk, and a line carried over from earlier chunks as a block of its own', () => {
    const splitter = new LineSplitter({ maxLineBytes: 100 });
    const first = Buffer.from('a\nb');
    const [a, ...none] = splitter.push(first);
    expect([a!.toString(), none]).toEqual(['a\n', []]);
    expect(a!.buffer).toBe(first.buffer);
    const second = Buffer.from('c\nd\ne');
    const blocks = splitter.push(second);
    expect(blocks.map(String)).toEqual(['bc\n', 'd\n']);
    expect(blocks[1]!.buffer).toBe(second.buffer);
    expect(splitter.push(Buffer.from('f'))).toEqual([]);
    expect(splitter.finish().map(String)).toEqual(['ef\n']);
  });

  it('drops the rest of a line it started in the middle of', () => {
    expect(split([Buffer.from('of a line\nwhole\n')], { midLine: true }).lines).toEqual(['whole']);
    expect(split([Buffer.from('\nwhole\n')], { midLine: true }).lines).toEqual(['whole']);
    expect(
      split([Buffer.from('x'.repeat(500)), Buffer.from('\nwhole')], { midLine: true, maxLineBytes: 10 })
        .lines,
    ).toEqual(['whole']);
  });

  it('finish() hands over the unterminated last line once, cut if it is too long', () => {
    const splitter = new LineSplitter({ maxLineBytes: 8 });
    splitter.push(Buffer.from('a\nlast\r'));
    expect(linesOf(splitter.finish())).toEqual(['last\r']);
    expect(splitter.offset).toBe(7);
    expect(splitter.finish()).toEqual([]);
    splitter.push(Buffer.from('far too long'));
    expect(linesOf(splitter.finish())).toEqual(['far too l']);
    expect(linesOf(splitter.push(Buffer.from('fresh\n')))).toEqual(['fresh']);
  });

  it('hands over only the lines that begin before `end`, with the one that holds byte end - 1', () => {
    const stream = Buffer.from('aa\nbb\ncc\ndd');
    const at = (end: number) => split([stream], { end }).lines;
    expect(at(1)).toEqual(['aa']);
    expect(at(3)).toEqual(['aa']);
    expect(at(4)).toEqual(['aa', 'bb']);
    expect(at(10)).toEqual(['aa', 'bb', 'cc', 'dd']);
    const splitter = new LineSplitter({ end: 4 });
    splitter.push(Buffer.from('aa\nb'));
    expect(splitter.done).toBe(false);
    expect(linesOf(splitter.push(Buffer.from('b\ncc\n')))).toEqual(['bb']);
    expect(splitter.done).toBe(true);
    expect(splitter.push(Buffer.from('dd\n'))).toEqual([]);
  });

  it('rejects a maxLineBytes that is not a positive integer', () => {
    expect(() => new LineSplitter({ maxLineBytes: 0 })).toThrow(RangeError);
    expect(() => new LineSplitter({ maxLineBytes: 1.5 })).toThrow(RangeError);
  });

  const unit = fc.constantFrom('a', 'é', '€', '\r', '🎉', ' ');
  const chunking = fc.array(fc.nat(), { maxLength: 8 });

  it('gives every line, cut to maxLineBytes + 1 bytes, however the stream is chunked', () => {
    fc.assert(
      fc.property(
        fc.array(fc.string({ unit, maxLength: 30 }), { maxLength: 20 }),
        fc.boolean(),
        chunking,
        fc.integer({ min: 1, max: 40 }),
        (lines, terminated, points, maxLineBytes) => {
          const text = lines.join('\n') + (terminated && lines.length > 0 ? '\n' : '');
          const stream = Buffer.from(text);
          // An empty last part is no line: the newline before it ended the last one.
          const parts = text.split('\n');
          if (parts.at(-1) === '') parts.pop();
          const expected = expectedLines(parts, maxLineBytes);
          const chunks = cut(
            stream,
            points.map((p) => p % (stream.length + 1)),
          );
          expect(split(chunks, { maxLineBytes }).lines).toEqual(expected);
        },
      ),
      { numRuns: 3000 },
    );
  });

  it('splits a stream into ranges that together hold each line exactly once', () => {
    fc.assert(
      fc.property(
        fc.array(fc.string({ unit, maxLength: 12 }), { maxLength: 20 }),
        fc.array(fc.nat(), { maxLength: 5 }),
        chunking,
        (lines, bounds, points) => {
          const stream = Buffer.from(lines.map((line) => `${line}\n`).join(''));
          const ends = [...new Set(bounds.map((b) => b % (stream.length + 1)))].sort((x, y) => x - y);
          const starts = [0, ...ends];
          const parts = starts.map((start, i) => {
            const end = ends[i] ?? Number.POSITIVE_INFINITY;
            // As a file segment is read: from the byte before its start, dropping the line that holds it.
            const from = Math.max(0, start - 1);
            const range = stream.subarray(from);
            const chunks = cut(
              range,
              points.map((p) => p % (range.length + 1)),
            );
            return split(chunks, { offset: from, midLine: start > 0, end, maxLineBytes: 20 }).lines;
          });
          expect(parts.flat()).toEqual(expectedLines(lines, 20));
        },
      ),
      { numRuns: 2000 },
    );
  });
});

describe('linesOf', () => {
  it('gives the lines of blocks in order', () => {
    expect(linesOf([Buffer.from('a\n\nb\n'), Buffer.from('c\n')])).toEqual(['a', '', 'b', 'c']);
  });
});
