import { describe, expect, it } from 'vitest';
import { StderrLines } from '../../agent/sources/journalctl.ts';

function collect(chunks: readonly Buffer[]): { logged: string[]; last: readonly string[] } {
  const logged: string[] = [];
  const stderr = new StderrLines((line) => logged.push(line));
  for (const chunk of chunks) stderr.push(chunk);
  stderr.end();
  return { logged, last: stderr.last };
}

describe('StderrLines', () => {
  it('cuts a line over 500 bytes to 501 and drops its rest, however it arrives', () => {
    const long = Buffer.from(`${'e'.repeat(10_000)}\nnext\n`);
    const expected = ['e'.repeat(501), 'next'];
    expect(collect([long]).logged).toEqual(expected);
    const pieces = Array.from({ length: Math.ceil(long.length / 700) }, (_, i) =>
      long.subarray(i * 700, (i + 1) * 700),
    );
    expect(collect(pieces).logged).toEqual(expected);
  });

  it('decodes a character split between two chunks', () => {
    const bytes = Buffer.from('Failed to open journal file «x»: No such file\n');
    const at = bytes.indexOf(Buffer.from('«')) + 1;
    expect(collect([bytes.subarray(0, at), bytes.subarray(at)]).logged).toEqual([
      'Failed to open journal file «x»: No such file',
    ]);
  });

  it('skips blank lines, keeps the last five, logs the first twenty, and hands over an unterminated last line', () => {
    const lines = Array.from({ length: 30 }, (_, i) => `line ${i}`);
    const { logged, last } = collect([Buffer.from(`${lines.join('\n \n')}\n\n`), Buffer.from('tail')]);
    expect(logged).toEqual(lines.slice(0, 20));
    expect(last).toEqual([...lines.slice(26), 'tail']);
  });
});
