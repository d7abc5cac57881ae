import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ExportReader } from '../../../agent/sources/journal-export.ts';
import { type EntryMark, markOf, planParts, ReadAhead } from '../../../agent/tools/bulk/journal-parts.ts';
import { journalProbe, readJournalOnce } from '../../../agent/tools/bulk/journal-read.ts';
import type { LogRecord } from '../../../agent/types.ts';
import { caseDirs } from '../../support/case-dirs.ts';
import {
  appendJournal,
  calicoMessage,
  type JournalEntry,
  journalctlSpy,
  MACHINE_ID,
} from '../../support/journal.ts';

const dirs = caseDirs('journal-parts');
const newDir = dirs.next;

async function readAll(
  directory: string,
  parallelMinBytes: number,
  journalctl?: string,
): Promise<LogRecord[]> {
  const records: LogRecord[] = [];
  for await (const batch of readJournalOnce(directory, { parallelMinBytes, journalctl }))
    records.push(...batch);
  return records;
}

const WHOLE = Number.POSITIVE_INFINITY;
const IN_PARTS = 0;

/** Kernel entries numbered from `first`, `stepUs` apart from `startUs` on. */
function entries(first: number, count: number, startUs: number, stepUs: number): JournalEntry[] {
  return Array.from({ length: count }, (_, i) => ({
    message: calicoMessage(first + i),
    realtimeUs: startUs + i * stepUs,
  }));
}

describe('reading a journal in parts (real journal files, real journalctl)', () => {
  it('gives every entry once, in the order one journalctl gives them', async () => {
    const dir = await newDir();
    const start = (Date.now() - 60_000) * 1000;
    const all = entries(1, 3000, start, 1000);
    const forged: JournalEntry = { message: calicoMessage(9999), transport: 'syslog', realtimeUs: start + 5 };
    // Two files whose entries interleave in time: journalctl merges them.
    await appendJournal(join(dir, MACHINE_ID, 'system.journal'), [
      forged,
      ...all.filter((_, i) => i % 3 !== 0),
    ]);
    await appendJournal(
      join(dir, 'other.journal'),
      all.filter((_, i) => i % 3 === 0),
    );
    const parts = await planParts(journalProbe('journalctl', dir), [], 2);
    expect(parts).toHaveLength(2);
    expect(parts[0]!.stopAt).toMatch(/^s=/);
    const whole = await readAll(dir, WHOLE);
    expect(whole).toHaveLength(3000);
    const spy = await journalctlSpy(dir);
    expect(await readAll(dir, IN_PARTS, spy.path)).toEqual(whole);
    // Two export runs: the first part from the start, the second from the cut's cursor.
    const exports = (await spy.runs()).filter((run) => run.args.includes('--output=export'));
    expect(exports.map((run) => run.args.includes(`--cursor=${parts[0]!.stopAt}`))).toEqual([false, true]);
  });

  it('gives every entry once where the clock was set back in the middle of the journal', async () => {
    const dir = await newDir();
    const start = (Date.now() - 60_000) * 1000;
    // The second half was written after the clock went back 5 s: the cut by time, 7.5 s after the
    // first entry, falls in both halves.
    await appendJournal(join(dir, 'system.journal'), [
      ...entries(1, 1000, start, 10_000),
      ...entries(1001, 1000, start + 5_000_000, 10_000),
    ]);
    expect(await planParts(journalProbe('journalctl', dir), [], 2)).toHaveLength(2);
    const whole = await readAll(dir, WHOLE);
    expect(whole).toHaveLength(2000);
    const parted = await readAll(dir, IN_PARTS);
    expect(parted.map((r) => r.text).sort()).toEqual(whole.map((r) => r.text).sort());
    expect(new Set(parted.map((r) => r.text)).size).toBe(2000);
  });

  it('reads on to the end, and nothing of the later parts, when the next part’s first entry never comes', async () => {
    const dir = await newDir();
    const start = (Date.now() - 60_000) * 1000;
    await appendJournal(join(dir, 'system.journal'), entries(1, 500, start, 1000));
    // A journalctl whose probes name a cut at an entry that is not there, and that always exports
    // the whole journal (as if the files had been replaced between the probes and the reads).
    const fake = join(dir, 'fake-journalctl');
    await writeFile(
      fake,
      [
        '#!/bin/sh',
        'case "$*" in',
        `  *--output=json*--reverse*) echo '{"__CURSOR":"s=1;i=ffff","__REALTIME_TIMESTAMP":"${start + 499_000}"}' ;;`,
        `  *--output=json*--since=*) echo '{"__CURSOR":"s=1;i=fffe","__REALTIME_TIMESTAMP":"${start + 250_000}"}' ;;`,
        `  *--output=json*) echo '{"__CURSOR":"s=1;i=1","__REALTIME_TIMESTAMP":"${start}"}' ;;`,
        `  *) exec journalctl --directory='${dir}' --output=export _TRANSPORT=kernel ;;`,
        'esac',
      ].join('\n'),
    );
    await chmod(fake, 0o755);
    const parts = await planParts(journalProbe(fake, dir), [], 2);
    expect(parts.map((p) => p.stopAt)).toEqual(['s=1;i=fffe', null]);
    const parted = await readAll(dir, IN_PARTS, fake);
    expect(parted.map((r) => r.text)).toEqual(entries(1, 500, start, 1000).map((e) => e.message));
  });

  it('reads a small journal whole', async () => {
    const dir = await newDir();
    await appendJournal(join(dir, 'system.journal'), entries(1, 10, Date.now() * 1000 - 10_000, 1000));
    // Probes would fail: a read in parts would show as a rejected journalctl run.
    const fake = join(dir, 'fake-journalctl');
    await writeFile(
      fake,
      `#!/bin/sh\ncase "$*" in *--output=json*) exit 3 ;; *) exec journalctl "$@" ;; esac\n`,
    );
    await chmod(fake, 0o755);
    expect(await readAll(dir, 64 << 20, fake)).toHaveLength(10);
  });
});

describe('planParts', () => {
  const mark = (n: number, us: number): EntryMark => ({ cursor: `s=1;i=${n.toString(16)}`, realtimeUs: us });
  /** A probe over marks: the first at or after --since, the last with --reverse. */
  const probeOver =
    (marks: readonly EntryMark[]) =>
    async (args: readonly string[]): Promise<EntryMark | null> => {
      if (args.includes('--reverse')) return marks.at(-1) ?? null;
      const since = args.find((a) => a.startsWith('--since=@'));
      const us = since === undefined ? Number.NEGATIVE_INFINITY : Math.round(Number(since.slice(9)) * 1e6);
      return marks.find((m) => m.realtimeUs >= us) ?? null;
    };

  it('cuts at the first entry at or after evenly spaced times', async () => {
    const marks = [mark(1, 0), mark(2, 400_000), mark(3, 600_000), mark(4, 1_000_000)];
    expect(await planParts(probeOver(marks), [], 2)).toEqual([
      { startArgs: [], stopAt: mark(3, 0).cursor },
      { startArgs: [`--cursor=${mark(3, 0).cursor}`], stopAt: null },
    ]);
    // Cuts at 250, 500 and 750 ms fall on entries 2, 3 and 4.
    expect(await planParts(probeOver(marks), [], 4)).toEqual([
      { startArgs: [], stopAt: mark(2, 0).cursor },
      { startArgs: [`--cursor=${mark(2, 0).cursor}`], stopAt: mark(3, 0).cursor },
      { startArgs: [`--cursor=${mark(3, 0).cursor}`], stopAt: mark(4, 0).cursor },
      { startArgs: [`--cursor=${mark(4, 0).cursor}`], stopAt: null },
    ]);
  });

  it('keeps the since argument on the first part and uses it for the probes', async () => {
    const marks = [mark(1, 2_000_000), mark(2, 3_000_000)];
    const since = ['--since=@1.000000'];
    expect(await planParts(probeOver(marks), since, 2)).toEqual([
      { startArgs: since, stopAt: mark(2, 0).cursor },
      { startArgs: [`--cursor=${mark(2, 0).cursor}`], stopAt: null },
    ]);
  });

  it.each([
    ['one entry', [mark(1, 5)]],
    ['entries all of one microsecond', [mark(1, 5), mark(2, 5)]],
    ['no entry', []],
  ])('reads %s whole', async (_name, marks) => {
    expect(await planParts(probeOver(marks), [], 2)).toEqual([{ startArgs: [], stopAt: null }]);
  });

  it('reads whole when a probe fails', async () => {
    expect(await planParts(async () => null, [], 2)).toEqual([{ startArgs: [], stopAt: null }]);
  });
});

describe('markOf', () => {
  it('reads the cursor and time of a journalctl --output=json line', () => {
    expect(markOf('{"__CURSOR":"s=ab;i=1f","__REALTIME_TIMESTAMP":"1795428090467000","_X":"y"}')).toEqual({
      cursor: 's=ab;i=1f',
      realtimeUs: 1795428090467000,
    });
  });

  it.each([
    ['not JSON', 'journalctl: No journal files were found.'],
    ['no cursor', '{"__REALTIME_TIMESTAMP":"1"}'],
    ['a cursor that is none', '{"__CURSOR":"--help","__REALTIME_TIMESTAMP":"1"}'],
    ['a time that is no number', '{"__CURSOR":"s=1","__REALTIME_TIMESTAMP":"soon"}'],
    ['JSON that is no object', 'null'],
  ])('rejects %s', (_name, line) => {
    expect(markOf(line)).toBeNull();
  });
});

describe('ReadAhead', () => {
  const asIs = (chunk: Buffer): Buffer => chunk;

  it('holds up to its limit, pauses the stream there, and resumes it as items are taken', async () => {
    const stream = new PassThrough();
    const ahead = new ReadAhead(stream, 4096, asIs, () => false);
    const chunks = Array.from({ length: 10 }, (_, i) => Buffer.alloc(1024, i));
    for (const chunk of chunks) stream.write(chunk);
    stream.end();
    await new Promise((resolve) => setImmediate(resolve));
    expect(ahead.held).toBe(4096);
    expect(stream.isPaused()).toBe(true);
    const taken: Buffer[] = [];
    for await (const chunk of ahead) taken.push(chunk);
    expect(Buffer.concat(taken)).toEqual(Buffer.concat(chunks));
    expect(ahead.held).toBe(0);
  });

  it('gives what each chunk parses into, and reads nothing more once done', async () => {
    const stream = new PassThrough();
    let seen = 0;
    const parse = (chunk: Buffer): string | null => {
      seen++;
      return chunk.toString() === 'skip' ? null : chunk.toString();
    };
    const ahead = new ReadAhead(stream, 1 << 20, parse, () => seen === 3);
    for (const text of ['a', 'skip', 'b', 'c', 'd']) {
      stream.write(text);
      await new Promise((resolve) => setImmediate(resolve));
    }
    const taken: string[] = [];
    for await (const item of ahead) taken.push(item);
    expect(taken).toEqual(['a', 'b']);
    expect(seen).toBe(3);
  });

  it('passes on an error of the stream', async () => {
    const stream = new PassThrough();
    const ahead = new ReadAhead(stream, 4096, asIs, () => false);
    stream.destroy(new Error('EIO'));
    await expect(
      (async () => {
        for await (const _ of ahead);
      })(),
    ).rejects.toThrow('EIO');
  });
});

describe('ExportReader with a cursor to stop at', () => {
  const entry = (cursor: string, message: string) =>
    `__CURSOR=${cursor}\n__REALTIME_TIMESTAMP=1\n_TRANSPORT=kernel\nMESSAGE=${message}\n\n`;
  const stream = Buffer.from(entry('s=1;i=1', 'one') + entry('s=1;i=2', 'two') + entry('s=1;i=3', 'three'));

  it('reads the entries before it and none from it on, wherever the chunks end', () => {
    for (let size = 1; size <= stream.length; size += 7) {
      const reader = new ExportReader(() => {}, 's=1;i=2');
      const messages: (string | null)[] = [];
      for (let at = 0; at < stream.length; at += size) {
        messages.push(...reader.push(stream.subarray(at, at + size)).map((e) => e.message));
      }
      expect(messages).toEqual(['one']);
      expect(reader.stopped).toBe(true);
    }
  });

  it('reads everything when that cursor never comes', () => {
    const reader = new ExportReader(() => {}, 's=1;i=9');
    expect(reader.push(stream).map((e) => e.message)).toEqual(['one', 'two', 'three']);
    expect(reader.stopped).toBe(false);
  });
});
