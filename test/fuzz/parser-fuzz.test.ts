/**
 * Fuzz run of the parser: realistic kernel lines, damaged, through every way the agent and the `parse`
 * command hand lines to it (whole file lines, journal messages with their host, and blocks of a byte
 * stream cut into random chunks). Every line must come out exactly once as a drop with valid values, a
 * skip, or an invalid line with a known reason; the block path must agree line by line with the single
 * line path; Event messages built from the drops must hold nothing but the validated values; and the
 * parser's memory must not grow with the number of lines.
 */

import { describe, expect, it } from 'vitest';
import { dropMessage } from '../../agent/events/message.ts';
import { LineSplitter, MAX_LINE_LENGTH } from '../../agent/lines.ts';
import { Metrics } from '../../agent/metrics.ts';
import {
  createParser,
  INVALID_REASONS,
  type InvalidReason,
  type ParseResult,
} from '../../agent/parser/parse.ts';
import { BlockParser, dropJson } from '../../agent/tools/bulk/block.ts';
import type { Direction, PacketDrop } from '../../agent/types.ts';
import { fileLineParser } from '../parser/samples.ts';
import { fuzzSeed, kernelLine, mutate, PREFIX, Random, randomChunks } from './generators.ts';
import { heapAfterGc, mebibytes } from './heap.ts';
import { messageViolation, resultViolation } from './invariants.ts';

const SEED = fuzzSeed();
/** Each generated line is damaged twice: once as a file line, once as a journal MESSAGE. */
const GENERATED = 100_000;
const BATCH = 2000;
const MAX_MUTATIONS = 4;
/** How often a mutation bloats a value or line past the 16 KiB limit. */
const HUGE_CHANCE = 0.01;
/** Heap growth allowed from the end of the warm-up to the end: the parser's caches are bounded, and full by then. */
const HEAP_GROWTH_LIMIT = 4 * 1024 * 1024;
const WARM_UP_BATCHES = 5;
const NOW = Date.UTC(2026, 3, 6, 12);
const PEER_NAMES = ['netperf-server-42010a80017f', 'kube-system/coredns-5d78c9869d-x2x7q'];
const DIRECTIONS: readonly Direction[] = ['send', 'receive'];
/** Hosts a journal may carry: `_HOSTNAME` is only as trustworthy as the machine that wrote it. */
const JOURNAL_HOSTS = [
  'node-1',
  'gke-node-9s00',
  '',
  'evil host',
  'a\u001b[31mb',
  'x'.repeat(300),
  'node\u0000',
];

const options = { prefix: PREFIX, timeLayout: null, now: () => NOW };

/** Counts of outcomes, and the same through the agent's own invalid-lines metric. */
class Tally {
  lines = 0;
  drops = 0;
  skipped = 0;
  invalid = 0;
  readonly byReason = new Map<InvalidReason, number>();
  readonly metrics = new Metrics();

  add(result: ParseResult): void {
    this.lines++;
    if (result.kind === 'drop') this.drops++;
    else if (result.kind === 'skip') this.skipped++;
    else {
      this.invalid++;
      this.byReason.set(result.reason, (this.byReason.get(result.reason) ?? 0) + 1);
      this.metrics.linesInvalid.inc({ reason: result.reason });
    }
  }

  /** Every line counted exactly once, and the invalid ones by reason adding up, in the metric too. */
  async expectAccountedFor(lines: number): Promise<void> {
    expect(this.lines).toBe(lines);
    expect(this.drops + this.skipped + this.invalid).toBe(lines);
    expect([...this.byReason.values()].reduce((a, b) => a + b, 0)).toBe(this.invalid);
    const { values } = await this.metrics.linesInvalid.get();
    expect(values.reduce((sum, v) => sum + v.value, 0)).toBe(this.invalid);
    for (const v of values) expect(v.value).toBe(this.byReason.get(v.labels.reason as InvalidReason));
  }
}

/** Why a result is wrong for the input it came from, or null; the input is quoted on failure by the caller. */
function problemWith(result: ParseResult): string | null {
  const violation = resultViolation(result);
  if (violation !== null || result.kind !== 'drop') return violation;
  return messageProblem(result.drop);
}

let messagesChecked = 0;

/** The Event messages for both sides of the drop, with the peer named by IP or by pod. */
function messageProblem(drop: PacketDrop): string | null {
  for (const direction of DIRECTIONS) {
    const peerIp = direction === 'send' ? drop.dst : drop.src;
    for (const peer of [peerIp, ...PEER_NAMES]) {
      messagesChecked++;
      const message = dropMessage(direction, drop, peer);
      const problem = messageViolation(message, direction, drop, peer);
      if (problem !== null) return `Event message: ${problem}: ${JSON.stringify(message)}`;
    }
  }
  return null;
}

function fail(problem: string, input: string): never {
  throw new Error(`${problem} (FUZZ_SEED=${SEED}) on ${JSON.stringify(input.slice(0, 600))}`);
}

/** What the single-line path made of one line, to compare the block path with. */
interface Expected {
  reason: InvalidReason | null;
  /** Over the limit: the block path may see a cut copy, which is too long or (prefix cut off) skipped. */
  overlong: boolean;
}

/** The lines of a byte stream as the file source delimits them, each decoded on its own. */
function splitLines(stream: Buffer): Buffer[] {
  const lines: Buffer[] = [];
  let from = 0;
  for (let newline = stream.indexOf(10); newline >= 0; newline = stream.indexOf(10, from)) {
    lines.push(stream.subarray(from, newline));
    from = newline + 1;
  }
  if (from < stream.length) lines.push(stream.subarray(from));
  return lines;
}

/** The stream through LineSplitter and BlockParser, as `parse` reads a file: per line, the outcome. */
function parseBlocks(rng: Random, parser: BlockParser, stream: Buffer) {
  const splitter = new LineSplitter();
  const invalid = new Map<number, InvalidReason>();
  const drops: string[] = [];
  let lines = 0;
  const onBlock = (block: Buffer): void => {
    const result = parser.lines(block);
    expect(result.drops + result.skipped + result.invalid.length).toBe(result.lines);
    for (const { line, reason, detail } of result.invalid) {
      expect(INVALID_REASONS).toContain(reason);
      expect(detail).toMatch(/^[\x20-\x7e]*$/);
      invalid.set(lines + line, reason);
    }
    if (result.output !== '') drops.push(...result.output.slice(0, -1).split('\n'));
    lines += result.lines;
  };
  for (const chunk of randomChunks(rng, stream)) {
    for (const block of splitter.push(chunk)) onBlock(block);
  }
  for (const block of splitter.finish()) onBlock(block);
  return { lines, invalid, drops };
}

describe('parser fuzz', () => {
  it(`accounts for ${GENERATED} damaged file lines and ${GENERATED} journal messages, each exactly once`, async () => {
    const rng = new Random(SEED);
    const parse = createParser(options);
    const fileLine = fileLineParser(options);
    const blockParser = new BlockParser(options, true);
    const file = new Tally();
    const journal = new Tally();
    let blockLines = 0;
    let overlong = 0;
    let splitByNewline = 0;
    const started = performance.now();
    let heapAtWarmUp = 0;

    for (let batch = 0; batch < GENERATED / BATCH; batch++) {
      if (batch === WARM_UP_BATCHES) heapAtWarmUp = heapAfterGc();
      const damaged: Buffer[] = [];
      for (let i = 0; i < BATCH; i++) {
        const generated = kernelLine(rng);
        damaged.push(mutate(rng, Buffer.from(generated.line), MAX_MUTATIONS, HUGE_CHANCE), Buffer.from('\n'));
        const text = mutate(rng, Buffer.from(generated.message), MAX_MUTATIONS, HUGE_CHANCE).toString('utf8');
        const host = rng.chance(0.8) ? 'node-1' : rng.pick(JOURNAL_HOSTS);
        const time = rng.chance(0.98) ? NOW - rng.below(1e9) : rng.pick([Number.NaN, 1e16, -1e16, Infinity]);
        const result = parse({ text, time, host });
        journal.add(result);
        const problem = problemWith(result);
        if (problem !== null) fail(problem, text);
      }

      const stream = Buffer.concat(damaged);
      const lines = splitLines(stream);
      splitByNewline += lines.length - BATCH;
      const expected: Expected[] = [];
      const expectedDrops: string[] = [];
      for (const bytes of lines) {
        const text = bytes.toString('utf8');
        const result = fileLine(text);
        file.add(result);
        const problem = problemWith(result);
        if (problem !== null) fail(problem, text);
        if (result.kind === 'drop') expectedDrops.push(dropJson(result.drop));
        const isOverlong = bytes.length > MAX_LINE_LENGTH;
        if (isOverlong) overlong++;
        expected.push({ reason: result.kind === 'invalid' ? result.reason : null, overlong: isOverlong });
      }

      const blocks = parseBlocks(rng, blockParser, stream);
      blockLines += blocks.lines;
      expect(blocks.lines).toBe(lines.length);
      expected.forEach((line, i) => {
        const reason = blocks.invalid.get(i + 1) ?? null;
        if (line.overlong) {
          expect([null, 'too_long']).toContain(reason);
          expect([null, 'too_long']).toContain(line.reason);
        } else if (reason !== line.reason) {
          fail(`block path says ${reason}, single line ${line.reason}`, lines[i]!.toString('utf8'));
        }
      });
      expect(blocks.drops).toEqual(expectedDrops);
    }

    // Every generated line ends with a newline; newlines inserted by mutations split it further.
    await file.expectAccountedFor(GENERATED + splitByNewline);
    await journal.expectAccountedFor(GENERATED);
    expect(blockLines).toBe(file.lines);
    const seconds = (performance.now() - started) / 1000;
    const heapDelta = heapAfterGc() - heapAtWarmUp;
    console.log(
      `parser fuzz (FUZZ_SEED=${SEED}): ${file.lines} file lines (each also through the block path) and ` +
        `${journal.lines} journal messages in ${seconds.toFixed(1)} s; ${overlong} over 16 KiB, ` +
        `${splitByNewline} extra lines from inserted newlines; file ${JSON.stringify(summary(file))}, ` +
        `journal ${JSON.stringify(summary(journal))}; ${messagesChecked} Event messages checked; ` +
        `heap after GC grew ${mebibytes(heapDelta)} after the warm-up`,
    );

    // The damage must reach every outcome, or the properties above would hold vacuously.
    for (const tally of [file, journal]) {
      expect(tally.drops).toBeGreaterThan(tally.lines / 10);
      expect(tally.invalid).toBeGreaterThan(tally.lines / 10);
      expect(tally.skipped).toBeGreaterThan(tally.lines / 20);
    }
    const fileReasons: InvalidReason[] = [
      'too_long',
      'bad_timestamp',
      'missing_field',
      'bad_address',
      'bad_port',
      'bad_field',
    ];
    for (const reason of fileReasons) expect(file.byReason.get(reason), reason).toBeGreaterThan(0);
    expect(journal.byReason.get('bad_host')).toBeGreaterThan(0);
    expect(overlong).toBeGreaterThan(0);
    expect(heapDelta).toBeLessThan(HEAP_GROWTH_LIMIT);
  });
});

function summary(tally: Tally): Record<string, number> {
  return {
    drops: tally.drops,
    skipped: tally.skipped,
    invalid: tally.invalid,
    ...Object.fromEntries(tally.byReason),
  };
}
