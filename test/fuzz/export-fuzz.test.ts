/**
 * Fuzz run of the journal export reader: streams of realistic entries (text and binary-length fields,
 * kernel and forged transports), damaged, read whole and in random chunks. Nothing may throw; every
 * entry must be well-formed and every error reported through onError; the result must not depend on
 * the chunking; the reader must find its way back to valid entries after any damage; what it holds
 * must stay within its caps; and what reaches the parser must yield only valid drops, never one from a
 * forged entry.
 */

import { isDeepStrictEqual } from 'node:util';
import { describe, expect, it } from 'vitest';
import { createParser, type ParseResult } from '../../agent/parser/parse.ts';
import {
  EXPORT_ERRORS,
  type ExportEntry,
  type ExportError,
  ExportReader,
  MAX_ENTRY_BYTES,
  MAX_FIELD_BYTES,
} from '../../agent/sources/journal-export.ts';
import { toRecords } from '../../agent/sources/journalctl.ts';
import type { LogRecord } from '../../agent/types.ts';
import { exportEntry } from '../support/journal.ts';
import {
  fuzzSeed,
  type GeneratedStream,
  JournalStreams,
  mutate,
  mutateStream,
  PREFIX,
  Random,
  randomChunks,
  randomCuts,
} from './generators.ts';
import { arrayBuffersAfterGc, heapAfterGc, mebibytes } from './heap.ts';
import { entryViolation, resultViolation } from './invariants.ts';

const SEED = fuzzSeed();
const STREAMS = 100_000;
const MAX_ENTRIES = 3;
const ENTRY_POOL = 2000;
const FRESH_ENTRY_CHANCE = 0.1;
const MAX_MUTATIONS = 3;
const HUGE_CHANCE = 0.005;
/** Every so many streams, the stream is also read intact, which checks the generator against the reader. */
const INTACT_EVERY = 10;
const WARM_UP_STREAMS = 5000;
/** The long-lived readers may hold one entry's worth and a chunk or two; nothing may pile up beyond that. */
const HEAP_GROWTH_LIMIT = 8 * 1024 * 1024;
const NOW = Date.UTC(2026, 3, 6, 12);

type Parse = (record: LogRecord) => ParseResult;

/**
 * Brings a reader back to an entry boundary from any state, in a few steps: a binary value (at most
 * MAX_FIELD_BYTES still to read) ends inside it and is then not followed by a newline, or lands on one
 * of its newlines; a text value ends at its first newline; a half-read name or length turns into a bad
 * binary length and a resynchronisation on its empty lines. It ends with an empty line placed further
 * than any binary value can reach, so the entries after it are read alone.
 */
const PAD = Buffer.alloc(MAX_FIELD_BYTES / 2 + 64, 'x');
const RECOVERY = Buffer.concat([
  Buffer.from('\n\n\nPAD='),
  PAD,
  Buffer.from('\nPAD='),
  PAD,
  Buffer.from('\n\n'),
]);

/** Valid entries after the damage: the reader must hand them over exactly. */
const SENTINEL_CURSOR = 's=sentinel;i=2';
const SENTINELS = Buffer.concat([
  exportEntry({
    message: `${PREFIX}: sentinel one`,
    realtimeUs: 1,
    hostname: 'node-s',
    fields: { __CURSOR: 's=sentinel;i=1' },
  }),
  exportEntry({
    message: Buffer.from(`${PREFIX}: sentinel\ntwo \xff`, 'latin1'),
    realtimeUs: 2,
    hostname: 'node-s',
    fields: { __CURSOR: SENTINEL_CURSOR },
  }),
]);
const SENTINEL_ENTRIES: ExportEntry[] = [
  { realtimeUs: 1, hostname: 'node-s', transport: 'kernel', facility: 0, message: `${PREFIX}: sentinel one` },
  {
    realtimeUs: 2,
    hostname: 'node-s',
    transport: 'kernel',
    facility: 0,
    message: `${PREFIX}: sentinel\ntwo \ufffd`,
  },
];

function fail(problem: string, stream: Buffer): never {
  const shown =
    stream.length > 2000 ? `${stream.subarray(0, 2000).toString('latin1')}...` : stream.toString('latin1');
  throw new Error(`${problem} (FUZZ_SEED=${SEED}) on stream ${JSON.stringify(shown)}`);
}

/** A reader with the errors it reported. */
class Reading {
  readonly errors: ExportError[] = [];
  readonly reader = new ExportReader((reason) => this.errors.push(reason));

  push(chunks: readonly Buffer[]): ExportEntry[] {
    const entries: ExportEntry[] = [];
    for (const chunk of chunks) entries.push(...this.reader.push(chunk));
    return entries;
  }

  /** Errors reported since `from`. */
  errorsSince(from: number): ExportError[] {
    return this.errors.slice(from);
  }
}

/** What one reading of a stream gave: compared between chunkings, which must not matter. */
interface Outcome {
  entries: ExportEntry[];
  errors: ExportError[];
  cursor: string | null;
}

/** Reads the stream through a long-lived reader, then the recovery tail and the sentinels. */
function readThrough(reading: Reading, chunks: readonly Buffer[], tail: readonly Buffer[]): Outcome {
  const before = reading.errors.length;
  const entries = reading.push([...chunks, ...tail]);
  return { entries, errors: reading.errorsSince(before), cursor: reading.reader.cursor };
}

/** Reads the stream alone through a new reader, up to its end, where a cut-off entry is an error. */
function readToEnd(chunks: readonly Buffer[]): Outcome {
  const reading = new Reading();
  const entries = reading.push(chunks);
  reading.reader.end();
  return { entries, errors: reading.errorsSince(0), cursor: reading.reader.cursor };
}

/** Counts of what the fuzz run saw, for the summary and for non-vacuity checks. */
class Stats {
  bytes = 0;
  entries = 0;
  records = 0;
  readonly results = { drop: 0, skip: 0, invalid: 0 };
  readonly errors = new Map<ExportError, number>();
  readonly rejections = new Map<string, number>();
  /** Forged entries whose message would have been a drop had the reader trusted them. */
  forgedDrops = 0;
  /** Streams with an error that the valid entries after them were still read from. */
  recoveredFromErrors = 0;

  count<K>(map: Map<K, number>, key: K): void {
    map.set(key, (map.get(key) ?? 0) + 1);
  }
}

/** The records the journal source would hand the parser, parsed: every drop valid, every entry accounted for. */
function throughParser(entries: readonly ExportEntry[], parse: Parse, stats: Stats, stream: Buffer): void {
  let rejected = 0;
  const records = toRecords(entries, (reason) => {
    rejected++;
    stats.count(stats.rejections, reason);
  });
  if (records.length + rejected !== entries.length)
    fail('an entry was neither a record nor rejected', stream);
  for (const [i, record] of records.entries()) {
    if (record.time === null) fail('a journal record without a time', stream);
    const result = parse(record);
    stats.results[result.kind]++;
    const problem = resultViolation(result);
    if (problem !== null) fail(`record ${i}: ${problem}`, stream);
  }
  stats.records += records.length;
}

/**
 * The intact stream: exactly the generated entries, no error, and only the kernel's entries as records.
 * Forged ones (SYSLOG_IDENTIFIER=kernel from another transport, or the kernel's transport with a user-space
 * facility, as what a process writes to /dev/kmsg) carry drop lines too, and must not pass.
 */
function checkIntact(generated: GeneratedStream, parse: Parse, stats: Stats): void {
  const intact = readToEnd([generated.bytes]);
  const expected = generated.entries.map((entry) => entry.expected);
  if (!isDeepStrictEqual(intact.entries, expected) || intact.errors.length > 0) {
    expect({ entries: intact.entries, errors: intact.errors }).toEqual({ entries: expected, errors: [] });
  }
  expect(intact.cursor).toBe(generated.entries.at(-1)!.cursor);
  const records = toRecords(intact.entries, () => {});
  const isKernel = (entry: ExportEntry) => entry.transport === 'kernel' && entry.facility === 0;
  const kernel = generated.entries.filter((entry) => isKernel(entry.expected));
  expect(records.map((record) => record.text)).toEqual(kernel.map((entry) => entry.expected.message));
  for (const { expected } of generated.entries) {
    if (isKernel(expected) || expected.message === null) continue;
    if (parse({ text: expected.message, time: NOW, host: null }).kind === 'drop') stats.forgedDrops++;
  }
}

describe('journal export reader fuzz', () => {
  it(`reads ${STREAMS} damaged export streams without throwing, chunking-independent, always recovering`, () => {
    const rng = new Random(SEED);
    const parse = createParser({ prefix: PREFIX });
    const streams = new JournalStreams(rng, ENTRY_POOL, FRESH_ENTRY_CHANCE);
    const whole = new Reading();
    const split = new Reading();
    const stats = new Stats();
    const started = performance.now();
    let heapAtWarmUp = 0;
    let buffersAtWarmUp = 0;

    for (let n = 0; n < STREAMS; n++) {
      if (n === WARM_UP_STREAMS) {
        heapAtWarmUp = heapAfterGc();
        buffersAtWarmUp = arrayBuffersAfterGc();
      }
      const generated = streams.next(rng.int(1, MAX_ENTRIES));
      if (n % INTACT_EVERY === 0) checkIntact(generated, parse, stats);
      const stream = rng.chance(0.5)
        ? mutate(rng, generated.bytes, MAX_MUTATIONS, HUGE_CHANCE)
        : mutateStream(rng, generated.bytes, HUGE_CHANCE);
      stats.bytes += stream.length;

      const tail = [RECOVERY, SENTINELS];
      const a = readThrough(whole, [stream], tail);
      const b = readThrough(split, randomChunks(rng, stream), [
        ...randomCuts(rng, RECOVERY, 2),
        ...randomChunks(rng, SENTINELS),
      ]);
      if (!isDeepStrictEqual(a, b)) {
        expect(b, `FUZZ_SEED=${SEED}: chunking changed the result`).toEqual(a);
      }
      const recovered = a.entries.slice(-SENTINEL_ENTRIES.length);
      if (!isDeepStrictEqual(recovered, SENTINEL_ENTRIES) || a.cursor !== SENTINEL_CURSOR) {
        fail(`did not recover: last entries ${JSON.stringify(recovered)}, cursor ${a.cursor}`, stream);
      }

      const ended = readToEnd([stream]);
      const endedSplit = readToEnd(randomChunks(rng, stream));
      if (!isDeepStrictEqual(ended, endedSplit)) {
        expect(endedSplit, `FUZZ_SEED=${SEED}: chunking changed the result at the end`).toEqual(ended);
      }
      if (a.errors.length > 0) stats.recoveredFromErrors++;
      for (const entry of [...ended.entries, ...a.entries]) {
        const problem = entryViolation(entry);
        if (problem !== null) fail(`entry ${JSON.stringify(entry).slice(0, 300)}: ${problem}`, stream);
      }
      for (const error of ended.errors) {
        if (!EXPORT_ERRORS.includes(error)) fail(`unknown error ${error}`, stream);
        stats.count(stats.errors, error);
      }
      stats.entries += ended.entries.length;
      throughParser(ended.entries, parse, stats, stream);
    }

    const seconds = (performance.now() - started) / 1000;
    const heapDelta = heapAfterGc() - heapAtWarmUp;
    // The two long-lived readers keep at most an entry's pieces each, whatever the streams held before.
    const buffersDelta = arrayBuffersAfterGc() - buffersAtWarmUp;
    console.log(
      `export fuzz (FUZZ_SEED=${SEED}): ${STREAMS} damaged streams (${mebibytes(stats.bytes)}), each read ` +
        `whole and in random chunks, to its end and followed by valid entries, in ${seconds.toFixed(1)} s ` +
        `(${stats.recoveredFromErrors} with errors, valid entries read after each); ` +
        `${stats.entries} entries, errors ${JSON.stringify(Object.fromEntries(stats.errors))}, ` +
        `rejected ${JSON.stringify(Object.fromEntries(stats.rejections))}, ${stats.records} records parsed ` +
        `${JSON.stringify(stats.results)}; Buffers held grew ${buffersDelta} bytes (cap ${MAX_ENTRY_BYTES} per reader); ` +
        `heap after GC grew ${mebibytes(heapDelta)} after the warm-up`,
    );

    expect(buffersDelta).toBeLessThanOrEqual(2 * MAX_ENTRY_BYTES);
    expect(heapDelta).toBeLessThan(HEAP_GROWTH_LIMIT);
    // The damage must reach every error and every outcome, or the properties above would hold vacuously.
    for (const error of EXPORT_ERRORS) expect(stats.errors.get(error), error).toBeGreaterThan(0);
    expect(stats.rejections.get('untrusted_transport')).toBeGreaterThan(0);
    expect(stats.rejections.get('untrusted_facility')).toBeGreaterThan(0);
    expect(stats.forgedDrops).toBeGreaterThan(0);
    expect(stats.recoveredFromErrors).toBeGreaterThan(STREAMS / 10);
    for (const kind of ['drop', 'skip', 'invalid'] as const) expect(stats.results[kind]).toBeGreaterThan(0);
  });
});
