import { execFile } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type ExportEntry,
  type ExportError,
  ExportReader,
  MAX_ENTRY_BYTES,
  MAX_FIELD_BYTES,
  NOT_A_FACILITY,
} from '../../agent/sources/journal-export.ts';
import { arrayBuffersAfterGc } from '../fuzz/heap.ts';
import { appendJournal, calicoMessage, exportField, tempDir } from '../support/journal.ts';

const run = promisify(execFile);
const T0 = 1_775_414_502_123_456;
const BINARY_MESSAGE = Buffer.concat([
  Buffer.from('calico-packet: first line\nsecond line '),
  Buffer.from([0xff, 0xfe, 0xc3]),
  Buffer.from(' end'),
]);

interface Read {
  entries: ExportEntry[];
  errors: ExportError[];
  cursor: string | null;
}

/** Feeds the chunks in order, then ends the stream. */
function read(chunks: readonly Buffer[]): Read {
  const errors: ExportError[] = [];
  const reader = new ExportReader((reason) => errors.push(reason));
  const entries = chunks.flatMap((chunk) => reader.push(chunk));
  reader.end();
  return { entries, errors, cursor: reader.cursor };
}

function splitAt(stream: Buffer, ...points: number[]): Buffer[] {
  const bounds = [0, ...points, stream.length];
  return bounds.slice(1).map((end, i) => stream.subarray(bounds[i], end));
}

function bytewise(stream: Buffer): Buffer[] {
  return Array.from({ length: stream.length }, (_, i) => stream.subarray(i, i + 1));
}

/** Reads the stream whole, byte by byte, and split at every single boundary; all must agree. */
function readEverySplit(stream: Buffer): Read {
  const whole = read([stream]);
  expect(read(bytewise(stream))).toEqual(whole);
  for (let i = 1; i < stream.length; i++) expect(read(splitAt(stream, i))).toEqual(whole);
  return whole;
}

const text = (s: string): Buffer => Buffer.from(s);
const entry = (...fields: Buffer[]): Buffer => Buffer.concat([...fields, text('\n')]);
const valid = (n: number): Buffer =>
  entry(text(`__CURSOR=s=${n}\n__REALTIME_TIMESTAMP=${T0 + n}\n_TRANSPORT=kernel\nMESSAGE=entry ${n}\n`));
const lengthOf = (value: bigint): Buffer => {
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(value);
  return length;
};

describe('ExportReader on journalctl output of a real journal', () => {
  let dir: string;
  let stream: Buffer;

  beforeAll(async () => {
    dir = await tempDir('journal-export');
    await appendJournal(join(dir, 'x.journal'), [
      { message: calicoMessage(1), realtimeUs: T0, hostname: 'gke-node-9s00' },
      { message: BINARY_MESSAGE, realtimeUs: T0 + 1, hostname: 'gke-node-9s00' },
      { message: 'forged', realtimeUs: T0 + 2, transport: 'syslog', fields: { EXTRA: 'x'.repeat(300) } },
    ]);
    const out = await run('journalctl', [`--directory=${dir}`, '--output=export'], { encoding: 'buffer' });
    stream = out.stdout;
  });

  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('keeps the text fields the agent needs', () => {
    const { entries, errors } = read([stream]);
    expect(errors).toEqual([]);
    expect(entries).toHaveLength(3);
    expect(entries[0]).toEqual({
      realtimeUs: T0,
      hostname: 'gke-node-9s00',
      transport: 'kernel',
      facility: 0,
      message: calicoMessage(1),
    });
    expect(entries[2]).toMatchObject({ transport: 'syslog', message: 'forged', realtimeUs: T0 + 2 });
  });

  it('gives the cursor of the last entry read', () => {
    const cursors = stream
      .toString('latin1')
      .split('\n')
      .filter((line) => line.startsWith('__CURSOR='))
      .map((line) => line.slice('__CURSOR='.length));
    expect(cursors[2]).toMatch(/^s=[0-9a-f]{32};i=3;b=[0-9a-f]{32};m=[0-9a-f]+;t=[0-9a-f]+;x=[0-9a-f]+$/);
    const reader = new ExportReader();
    expect(reader.cursor).toBeNull();
    const firstEntryEnd = stream.indexOf('\n\n') + 2;
    reader.push(stream.subarray(0, firstEntryEnd + 40));
    expect(reader.cursor).toBe(cursors[0]);
    reader.push(stream.subarray(firstEntryEnd + 40));
    expect(reader.cursor).toBe(cursors[2]);
  });

  it('decodes a binary MESSAGE with a newline and invalid UTF-8', () => {
    expect(stream.includes(Buffer.concat([text('MESSAGE\n'), lengthOf(BigInt(BINARY_MESSAGE.length))]))).toBe(
      true,
    );
    const { entries } = read([stream]);
    expect(entries[1]!.message).toBe('calico-packet: first line\nsecond line \uFFFD\uFFFD\uFFFD end');
    expect(entries[1]!.transport).toBe('kernel');
  });

  it('reads the same entries however the stream is chunked', () => {
    const { entries, errors } = readEverySplit(stream);
    expect(errors).toEqual([]);
    expect(entries.map((e) => e.realtimeUs)).toEqual([T0, T0 + 1, T0 + 2]);
  });
});

describe('ExportReader on malformed streams', () => {
  it('skips garbage up to the next empty line', () => {
    const { entries, errors } = readEverySplit(
      Buffer.concat([
        text('\x00\x01 garbage ==\nmore\n\n'),
        valid(1),
        text('lower case=ok? no\n\n'),
        valid(2),
      ]),
    );
    expect(entries.map((e) => e.message)).toEqual(['entry 1', 'entry 2']);
    expect(errors).toEqual(['bad_field_name', 'bad_field_name']);
  });

  it('rejects an absurd binary length', () => {
    const { entries, errors } = readEverySplit(
      Buffer.concat([text('MESSAGE\n'), lengthOf(1n << 40n), text('abc\n\n'), valid(1)]),
    );
    expect(entries.map((e) => e.message)).toEqual(['entry 1']);
    expect(errors).toEqual(['bad_binary_length']);
  });

  it('finds the empty line inside what was taken for a binary length', () => {
    // A name line without `=` that is not followed by a length, right before the entry's end.
    const { entries, errors } = readEverySplit(
      Buffer.concat([text('__CURSOR=s=0\nNO_EQUALS_SIGN\n\n'), valid(1), valid(2)]),
    );
    expect(entries.map((e) => e.message)).toEqual(['entry 1', 'entry 2']);
    expect(errors).toEqual(['bad_binary_length']);
  });

  it('rejects a binary field not followed by a newline', () => {
    const { entries, errors } = readEverySplit(
      Buffer.concat([text('MESSAGE\n'), lengthOf(3n), text('abcX\n\n'), valid(1)]),
    );
    expect(entries.map((e) => e.message)).toEqual(['entry 1']);
    expect(errors).toEqual(['bad_binary_end']);
  });

  it('drops a truncated entry at the end of the stream', () => {
    for (const tail of ['MESSAGE=cut', 'MESSAGE\n\x05\x00', 'MESSAGE=complete\n', 'MESS']) {
      const { entries, errors } = readEverySplit(Buffer.concat([valid(1), text(tail)]));
      expect(entries.map((e) => e.message)).toEqual(['entry 1']);
      expect(errors).toEqual(['truncated']);
    }
  });

  it('caps a field and an entry, then reads on', () => {
    const longText = text(`MESSAGE=${'a'.repeat(MAX_FIELD_BYTES + 1)}\n\n`);
    const longBinary = Buffer.concat([
      text('MESSAGE\n'),
      lengthOf(BigInt(MAX_FIELD_BYTES + 1)),
      text(`${'c'.repeat(MAX_FIELD_BYTES + 1)}\n\n`),
    ]);
    const field = `F=${'b'.repeat(MAX_FIELD_BYTES - 10)}\n`;
    const longEntry = text(`${field.repeat(Math.ceil(MAX_ENTRY_BYTES / field.length))}\n`);
    for (const [stream, error] of [
      [longText, 'field_too_long'],
      [longBinary, 'bad_binary_length'],
      [longEntry, 'entry_too_long'],
    ] as const) {
      const { entries, errors } = read([...splitAt(Buffer.concat([stream, valid(1)]), 5000, 70_000)]);
      expect(entries.map((e) => e.message)).toEqual(['entry 1']);
      expect(errors).toEqual([error]);
    }
  });

  it('names the cap a value passes first, however the stream is chunked', () => {
    const field = `F=${'b'.repeat(60_000)}\n`;
    const huge = `H=${'h'.repeat(MAX_FIELD_BYTES + 1000)}\n`;
    // Four fields leave less than a field's worth of room in the entry, three leave more.
    for (const [fields, error] of [
      [4, 'entry_too_long'],
      [3, 'field_too_long'],
    ] as const) {
      const stream = Buffer.concat([text(`${field.repeat(fields)}${huge}\n`), valid(1)]);
      const hugeAt = field.length * fields;
      for (const chunks of [
        [stream],
        splitAt(stream, hugeAt + 30_000),
        splitAt(stream, hugeAt + 10, hugeAt + 65_000),
      ]) {
        const { entries, errors } = read(chunks);
        expect(entries.map((e) => e.message)).toEqual(['entry 1']);
        expect(errors).toEqual([error]);
      }
    }
  });

  it('holds the pieces of a value that spans chunks, and lets go of them once the entry is complete', () => {
    // Measured as the Buffers this thread keeps alive: every chunk is a Buffer of its own, as read from a pipe.
    const reader = new ExportReader();
    const length = MAX_FIELD_BYTES - 100;
    const before = arrayBuffersAfterGc();
    reader.push(text('__CURSOR=s=1\n_HOSTNAME=node-1\nMESSAGE='));
    for (let i = 0; i < length; i += 1000) reader.push(Buffer.alloc(Math.min(1000, length - i), 'm'));
    const held = arrayBuffersAfterGc() - before;
    expect(held).toBeGreaterThanOrEqual(length);
    expect(held).toBeLessThanOrEqual(MAX_ENTRY_BYTES);
    const [entry] = reader.push(text('\n\n'));
    expect(entry?.message).toHaveLength(length);
    // What stays is the chunk that holds the cursor and the host name.
    expect(arrayBuffersAfterGc() - before).toBeLessThan(1000);
  });

  it('does not round a timestamp too large for a double to hold exactly', () => {
    const stream = entry(text('__REALTIME_TIMESTAMP=9999999999999999\nMESSAGE=x\n'));
    expect(read([stream]).entries[0]!.realtimeUs).toBeNull();
  });

  it('does not trust an entry with two different transports', () => {
    const stream = entry(text('_TRANSPORT=syslog\nMESSAGE=x\n_TRANSPORT=kernel\n'));
    expect(read([stream]).entries[0]!.transport).toBeNull();
  });

  it('keeps a binary form of a text field and ignores a non-numeric timestamp', () => {
    const stream = entry(exportField('_HOSTNAME', 'host\nname'), text('__REALTIME_TIMESTAMP=12x\n'));
    expect(readEverySplit(stream).entries).toEqual([
      { realtimeUs: null, hostname: 'host\nname', transport: null, facility: null, message: null },
    ]);
  });

  it("reads the entry's facility; one it cannot tell, or two different, is NOT_A_FACILITY", () => {
    const facilityOf = (...fields: string[]) =>
      read([entry(text(`_TRANSPORT=kernel\nMESSAGE=x\n${fields.join('')}`))]).entries[0]!.facility;
    expect(facilityOf()).toBeNull();
    expect(facilityOf('SYSLOG_FACILITY=0\n')).toBe(0);
    expect(facilityOf('SYSLOG_FACILITY=1\n')).toBe(1);
    expect(facilityOf('SYSLOG_FACILITY=kern\n')).toBe(NOT_A_FACILITY);
    expect(facilityOf('SYSLOG_FACILITY=0\n', 'SYSLOG_FACILITY=0\n')).toBe(0);
    expect(facilityOf('SYSLOG_FACILITY=0\n', 'SYSLOG_FACILITY=1\n')).toBe(NOT_A_FACILITY);
  });
});
