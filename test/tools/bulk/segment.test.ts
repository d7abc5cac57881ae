/** Segments of real files: every line parsed once, in its segment, wherever the range ends fall. */

import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LineSplitter, MAX_LINE_LENGTH } from '../../../agent/lines.ts';
import { BlockParser, type BlockResult } from '../../../agent/tools/bulk/block.ts';
import { type Segment, SegmentReader } from '../../../agent/tools/bulk/segment.ts';
import { kernLine, TCP4, UDP4 } from '../../parser/samples.ts';
import { tempDir } from '../../support/journal.ts';

const options = { prefix: 'calico-packet', timeLayout: null, now: Date.now };

let dir: string;
beforeAll(async () => {
  dir = await tempDir('segment');
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Drops numbered by SPT, unrelated lines, bad ports, and overlong lines far longer than small segments. */
function fileText(lines: number, longEvery: number, longLength: number): string {
  const text = Array.from({ length: lines }, (_, i) => {
    if (i % longEvery === longEvery - 1) return `${kernLine(TCP4)} ${'é'.repeat(longLength)}`;
    if (i % 13 === 0) return `Apr 05 20:41:42 node-1 kernel: eth0: link up ${i}`;
    if (i % 31 === 2) return kernLine(UDP4.replace('SPT=41000', 'SPT=99999'));
    return kernLine(TCP4.replace('SPT=60353', `SPT=${i}`));
  }).join('\n');
  return text; // no newline after the last line, as a file still being written
}

/** The results of consecutive segments as one, lines renumbered as `parse` numbers them. */
function joined(results: readonly BlockResult[]): BlockResult {
  const whole: BlockResult = { lines: 0, drops: 0, skipped: 0, invalid: [], output: '' };
  for (const result of results) {
    whole.invalid.push(
      ...result.invalid.map((invalid) => ({ ...invalid, line: invalid.line + whole.lines })),
    );
    whole.lines += result.lines;
    whole.drops += result.drops;
    whole.skipped += result.skipped;
    whole.output += result.output;
  }
  return whole;
}

function segmentsOf(path: string, size: number, segmentBytes: number): Segment[] {
  const count = Math.ceil(size / segmentBytes);
  return Array.from({ length: count }, (_, k) => ({
    path,
    start: k * segmentBytes,
    end: k === count - 1 ? Number.POSITIVE_INFINITY : (k + 1) * segmentBytes,
  }));
}

describe('SegmentReader', () => {
  const cases = [
    { name: 'segments smaller than a line', lines: 300, longEvery: 50, longLength: 9_000, segment: 997 },
    { name: 'segments of a few lines', lines: 2_000, longEvery: 300, longLength: 20_000, segment: 4_099 },
    // Several reads of 512 KiB per segment, long lines across read ends.
    {
      name: 'segments of several reads',
      lines: 12_000,
      longEvery: 700,
      longLength: 40_000,
      segment: 1_300_001,
    },
  ];
  for (const { name, lines, longEvery, longLength, segment } of cases) {
    it(`parses each line exactly once: ${name}`, async () => {
      const text = fileText(lines, longEvery, longLength);
      const path = join(dir, `${segment}.log`);
      await writeFile(path, text);
      const size = Buffer.byteLength(text);
      const parser = new BlockParser(options, true);
      const reader = new SegmentReader();

      const segments = segmentsOf(path, size, segment);
      const results = segments.map((part) => parser.blocks(reader.blocks(part)));

      expect(segments.length).toBeGreaterThan(2);
      // The whole file in one chunk: a too long line is cut the same wherever reads end.
      const splitter = new LineSplitter();
      const whole = parser.blocks([...splitter.push(Buffer.from(text)), ...splitter.finish()]);
      expect(whole.lines).toBe(lines);
      expect(whole.invalid.filter((invalid) => invalid.reason === 'too_long').length).toBe(
        Math.floor(lines / longEvery),
      );
      expect(joined(results)).toEqual(whole);
      // Small segments inside a long line hold no line at all.
      if (segment < longLength) expect(results.some((result) => result.lines === 0)).toBe(true);
    });
  }

  it('keeps at most the parser limit of a line longer than a read', async () => {
    const path = join(dir, 'long.log');
    await writeFile(path, `${kernLine(TCP4)}\n${'x'.repeat(3 << 20)}\n${kernLine(TCP4)}\n`);
    const blocks: string[] = [];
    // Each block is copied as it is taken: the next read may reuse its bytes.
    for (const block of new SegmentReader().blocks({ path, start: 0, end: Number.POSITIVE_INFINITY })) {
      blocks.push(Buffer.from(block).toString());
    }
    expect(
      blocks
        .join('')
        .split('\n')
        .map((line) => line.length),
    ).toEqual([kernLine(TCP4).length, MAX_LINE_LENGTH + 1, kernLine(TCP4).length, 0]);
  });

  it('throws for a file it cannot open', () => {
    const missing = { path: join(dir, 'missing.log'), start: 0, end: 10 };
    expect(() => [...new SegmentReader().blocks(missing)]).toThrow(/ENOENT/);
  });
});
