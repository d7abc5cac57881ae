import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LineSplitter, type LineSplitterOptions } from '../../agent/sources/line-splitter.ts';

interface Split {
  lines: string[];
  overlong: number[];
  offset: number;
  pending: number;
}

/** Pushes the chunks in order, through one reused buffer as a file reader does. */
function split(chunks: readonly Buffer[], options: Partial<LineSplitterOptions> = {}): Split {
  const overlong: number[] = [];
  const splitter = new LineSplitter({ maxLineBytes: 64, onOverlong: (at) => overlong.push(at), ...options });
  const reused = Buffer.alloc(Math.max(0, ...chunks.map((c) => c.length)));
  const lines: string[] = [];
  for (const chunk of chunks) {
    chunk.copy(reused);
    lines.push(...splitter.push(reused.subarray(0, chunk.length)));
    reused.fill(0x58);
  }
  return { lines, overlong, offset: splitter.offset, pending: splitter.pending };
}

function splitAt(stream: Buffer, points: readonly number[]): Buffer[] {
  const bounds = [0, ...points, stream.length];
  return bounds.slice(1).map((end, i) => stream.subarray(bounds[i], end));
}

function bytewise(stream: Buffer): Buffer[] {
  return Array.from({ length: stream.length }, (_, i) => stream.subarray(i, i + 1));
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
  it('splits lines, strips one trailing CR, drops an overlong line and keeps the unterminated tail', () => {
    const result = split([SAMPLE]);
    expect(result.lines).toEqual([
      'calico-packet: IN=eth0 SRC=10.0.0.1',
      'crlf line',
      '',
      'multi-byte: é ü 日本 🎉',
      'bad \ufffd\ufffd\ufffd',
      'after the junk',
    ]);
    expect(result.overlong).toEqual([SAMPLE.indexOf('x')]);
    expect(result.offset).toBe(SAMPLE.lastIndexOf('\n') + 1);
    expect(result.pending).toBe(Buffer.byteLength('unterminated é'));
  });

  it('gives the same lines, overlong reports and offsets for a chunk boundary at every byte', () => {
    const whole = split([SAMPLE]);
    expect(split(bytewise(SAMPLE))).toEqual(whole);
    for (let i = 0; i <= SAMPLE.length; i++) expect(split(splitAt(SAMPLE, [i]))).toEqual(whole);
  });

  it('moves the offset past each newline and no further', () => {
    const splitter = new LineSplitter({ maxLineBytes: 64, offset: 1000 });
    expect(splitter.push(Buffer.from('ab'))).toEqual([]);
    expect([splitter.offset, splitter.pending]).toEqual([1000, 2]);
    expect(splitter.push(Buffer.from('c\nde'))).toEqual(['abc']);
    expect([splitter.offset, splitter.pending]).toEqual([1004, 2]);
    expect(splitter.push(Buffer.from('\n'))).toEqual(['de']);
    expect([splitter.offset, splitter.pending]).toEqual([1007, 0]);
  });

  it('keeps a line of exactly maxLineBytes and drops one byte more, before the CR is stripped', () => {
    const exact = 'a'.repeat(63);
    const result = split([Buffer.from(`${exact}\r\n${'b'.repeat(64)}\n${'c'.repeat(65)}\nend\n`)]);
    expect(result.lines).toEqual([exact, 'b'.repeat(64), 'end']);
    expect(result.overlong).toEqual([130]);
  });

  it('reports an overlong line once however many chunks it spans, holding at most maxLineBytes', () => {
    const overlong: number[] = [];
    const splitter = new LineSplitter({ maxLineBytes: 10, offset: 5, onOverlong: (at) => overlong.push(at) });
    expect(splitter.push(Buffer.from('ok\n123456'))).toEqual(['ok']);
    for (let i = 0; i < 100; i++) expect(splitter.push(Buffer.from('7890'))).toEqual([]);
    expect(overlong).toEqual([8]);
    expect(splitter.pending).toBe(406);
    expect(splitter.push(Buffer.from('tail\nnext\n'))).toEqual(['next']);
    expect(overlong).toEqual([8]);
    expect(splitter.offset).toBe(5 + 3 + 6 + 400 + 10);
  });

  it('drops the rest of a line it started in the middle of, without reporting it', () => {
    const result = split([Buffer.from('of a line\nwhole\n')], { midLine: true });
    expect(result.lines).toEqual(['whole']);
    expect(result.overlong).toEqual([]);
  });

  it('finish() returns the unterminated last line once, unless it was dropped', () => {
    const splitter = new LineSplitter({ maxLineBytes: 8 });
    splitter.push(Buffer.from('a\nlast\r'));
    expect(splitter.finish()).toBe('last');
    expect([splitter.offset, splitter.pending]).toEqual([7, 0]);
    expect(splitter.finish()).toBeNull();
    splitter.push(Buffer.from('far too long'));
    expect(splitter.finish()).toBeNull();
    expect(splitter.push(Buffer.from('fresh\n'))).toEqual(['fresh']);
  });

  it('rejects a maxLineBytes that is not a positive integer', () => {
    expect(() => new LineSplitter({ maxLineBytes: 0 })).toThrow(RangeError);
    expect(() => new LineSplitter({ maxLineBytes: 1.5 })).toThrow(RangeError);
  });

  it('splits any text however it is chunked', () => {
    const line = fc.string({ unit: fc.constantFrom('a', 'é', '\r', '🎉', ' '), maxLength: 20 });
    fc.assert(
      fc.property(fc.array(line, { maxLength: 20 }), fc.array(fc.nat(), { maxLength: 10 }), (lines, cuts) => {
        const stream = Buffer.from(lines.map((l) => `${l}\n`).join(''));
        const points = cuts.map((c) => c % (stream.length + 1)).sort((a, b) => a - b);
        const expected = lines
          .map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l))
          .filter((_, i) => Buffer.byteLength(lines[i]!) <= 64);
        expect(split(splitAt(stream, points)).lines).toEqual(expected);
      }),
    );
  });
});
