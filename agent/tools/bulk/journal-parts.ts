/**
 * A large journal read once by several journalctl processes at the same time. Turning journal files
 * into export text is the slowest step of reading a journal, and journalctl does it on one core, so a
 * one-off read of a large journal is split by time into one part per core. Each part is a journalctl
 * of its own that starts at the cursor of the part's first entry and is read up to the cursor where
 * the next part starts: cursors, not times, mark the edges, so no entry is read twice or skipped
 * wherever clocks jumped. Parts are handed over in order, so entries still come in journal order;
 * those not yet due are read ahead into memory up to a limit, beyond which their journalctl waits.
 */

import { stat } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { isCursor } from '../../sources/journal-export.ts';
import { journalFilePaths } from '../../sources/journal-files.ts';

/** Bytes of journal files in the directory; 0 when it cannot be read (the read itself will say why). */
export async function journalBytes(directory: string): Promise<number> {
  const paths = await journalFilePaths(directory).catch(() => []);
  const sizes = await Promise.all(
    paths.map((path) =>
      stat(path).then(
        (s) => s.size,
        () => 0,
      ),
    ),
  );
  return sizes.reduce((sum, size) => sum + size, 0);
}

/** An entry as a probe sees it: where it is and when it was written. */
export interface EntryMark {
  cursor: string;
  realtimeUs: number;
}

/**
 * The first entry journalctl shows with these extra arguments (`--since=...`, `--reverse`), or null
 * when it shows none or cannot run.
 */
export type Probe = (extraArgs: readonly string[]) => Promise<EntryMark | null>;

/** One part: the journalctl arguments that start it, and the cursor of the next part's first entry. */
export interface JournalPart {
  startArgs: readonly string[];
  stopAt: string | null;
}

/** `@seconds.micros`, the form of --since that journalctl takes to the microsecond. */
function sinceArg(us: number): string {
  const seconds = Math.floor(us / 1e6);
  return `--since=@${seconds}.${String(us - seconds * 1e6).padStart(6, '0')}`;
}

/**
 * Up to `count` parts of the journal from `since` on, cut at evenly spaced times between its first
 * and last entry. One part (`since` alone) when the journal cannot be split: too few entries, or a
 * probe failed.
 */
export async function planParts(
  probe: Probe,
  since: readonly string[],
  count: number,
): Promise<JournalPart[]> {
  const whole: JournalPart[] = [{ startArgs: since, stopAt: null }];
  if (count < 2) return whole;
  const [first, last] = await Promise.all([probe(since), probe([...since, '--reverse'])]);
  if (first === null || last === null || last.realtimeUs <= first.realtimeUs) return whole;
  const span = last.realtimeUs - first.realtimeUs;
  const marks = await Promise.all(
    Array.from({ length: count - 1 }, (_, i) =>
      probe([sinceArg(first.realtimeUs + Math.ceil((span * (i + 1)) / count))]),
    ),
  );
  // Sparse journals give several cuts the same first entry; a cut at the very first entry is no cut.
  const starts: string[] = [];
  for (const mark of marks) {
    if (mark === null || mark.cursor === first.cursor || starts.includes(mark.cursor)) continue;
    starts.push(mark.cursor);
  }
  return [
    { startArgs: since, stopAt: starts[0] ?? null },
    ...starts.map((cursor, i) => ({ startArgs: [`--cursor=${cursor}`], stopAt: starts[i + 1] ?? null })),
  ];
}

/** The mark of one line of `journalctl --output=json`, or null when it is not one. */
export function markOf(line: string): EntryMark | null {
  try {
    const { __CURSOR: cursor, __REALTIME_TIMESTAMP: realtime } = JSON.parse(line) as Record<string, unknown>;
    if (typeof cursor !== 'string' || !isCursor(cursor) || typeof realtime !== 'string') return null;
    if (!/^\d{1,16}$/.test(realtime)) return null;
    return { cursor, realtimeUs: Number(realtime) };
  } catch {
    return null;
  }
}

/**
 * What a stream's chunks turn into, made as the chunks come and kept until taken, up to `limit` bytes
 * of chunks: past it the stream is paused, so the process writing it waits rather than memory growing.
 * Parsing as the chunks come spreads that work over the whole read instead of leaving it for the end.
 */
export class ReadAhead<T> {
  private readonly items: { item: T; size: number }[] = [];
  private bytes = 0;
  private ended = false;
  private failure: Error | null = null;
  private wake: (() => void) | null = null;
  private readonly stream: Readable;
  private readonly limit: number;

  /** `parse` gives what a chunk holds (null for nothing); once `done` says so, the rest is not read. */
  constructor(stream: Readable, limit: number, parse: (chunk: Buffer) => T | null, done: () => boolean) {
    this.stream = stream;
    this.limit = limit;
    stream.on('data', (chunk: Buffer) => {
      if (this.ended) return;
      const item = parse(chunk);
      if (item !== null) {
        this.items.push({ item, size: chunk.length });
        this.bytes += chunk.length;
      }
      if (done()) this.ended = true;
      if (this.ended || this.bytes >= this.limit) stream.pause();
      this.signal();
    });
    stream.on('end', () => {
      this.ended = true;
      this.signal();
    });
    stream.on('error', (err) => {
      this.failure = err;
      this.signal();
    });
  }

  /** Bytes of chunks whose items are not yet taken. */
  get held(): number {
    return this.bytes;
  }

  private signal(): void {
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<T> {
    for (;;) {
      const next = this.items.shift();
      if (next !== undefined) {
        this.bytes -= next.size;
        if (this.bytes < this.limit && !this.ended) this.stream.resume();
        yield next.item;
        continue;
      }
      if (this.failure !== null) throw this.failure;
      if (this.ended) return;
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
    }
  }
}
