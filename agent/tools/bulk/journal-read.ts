/**
 * A whole journal directory read once, for the offline tools (`parse`, `doctor`): a large journal is read
 * in parts, one journalctl per core at once (see journal-parts.ts).
 */

import { spawn } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { ExportReader } from '../../sources/journal-export.ts';
import {
  DEFAULT_JOURNALCTL,
  describeExit,
  exitOf,
  journalctlArgs,
  kill,
  StderrLines,
  startJournalctl,
  toRecords,
} from '../../sources/journalctl.ts';
import type { LogRecord } from '../../types.ts';
import { journalBytes, markOf, type Probe, planParts, ReadAhead } from './journal-parts.ts';

/** A journal this large is read in parts, one journalctl per core (see journal-parts.ts). */
const PARALLEL_MIN_BYTES = 64 << 20;
/** Export text read ahead for the parts not yet due, in all: what a parallel read may hold in memory. */
const READ_AHEAD_BYTES = 64 << 20;
/** Read ahead of the part being handed over: enough to keep its journalctl writing. */
const DUE_READ_AHEAD_BYTES = 1 << 20;
/** A probe's first line is one short JSON object; more without a newline is not journalctl's. */
const MAX_PROBE_CHARS = 64 * 1024;

export interface ReadJournalOptions {
  journalctl?: string;
  /** Epoch ms: journalctl starts at that second, so entries up to a second older may come too. */
  sinceMs?: number | null;
  /** Journals with at least this many bytes of files are read in parts; Infinity reads in one. */
  parallelMinBytes?: number;
}

/** The first entry journalctl shows with these arguments, as `--output=json` gives it; null if none. */
export function journalProbe(journalctl: string, directory: string): Probe {
  return async (extra) => {
    const output = ['--output=json', '--output-fields=__REALTIME_TIMESTAMP'];
    const child = spawn(journalctl, journalctlArgs(directory, extra, output), {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    child.once('error', () => {});
    let text = '';
    try {
      for await (const chunk of child.stdout!) {
        text += (chunk as Buffer).toString('latin1');
        const newline = text.indexOf('\n');
        if (newline >= 0) return markOf(text.slice(0, newline));
        if (text.length > MAX_PROBE_CHARS) return null;
      }
      return null;
    } finally {
      kill(child);
    }
  };
}

/**
 * Every kernel-transport entry in a journal directory, in journal order, one batch per chunk read
 * from journalctl; then done. Throws when journalctl cannot run or fails. A large journal is read by
 * one journalctl per core at once (see journal-parts.ts).
 */
export async function* readJournalOnce(
  directory: string,
  options: ReadJournalOptions = {},
): AsyncGenerator<readonly LogRecord[]> {
  const journalctl = options.journalctl ?? DEFAULT_JOURNALCTL;
  const sinceMs = options.sinceMs ?? null;
  const since = sinceMs === null ? [] : [`--since=@${Math.floor(sinceMs / 1000)}`];
  const cores = availableParallelism();
  const large =
    cores > 1 && (await journalBytes(directory)) >= (options.parallelMinBytes ?? PARALLEL_MIN_BYTES);
  const parts = large
    ? await planParts(journalProbe(journalctl, directory), since, cores)
    : [{ startArgs: since, stopAt: null }];
  const started = parts.map((part, i) => {
    const stderr = new StderrLines();
    const child = startJournalctl(journalctl, journalctlArgs(directory, part.startArgs), stderr);
    const limit = i === 0 ? DUE_READ_AHEAD_BYTES : Math.floor(READ_AHEAD_BYTES / (parts.length - 1));
    const reader = new ExportReader(() => {}, part.stopAt);
    const parse = (chunk: Buffer): LogRecord[] | null => {
      const records = toRecords(reader.push(chunk), () => {});
      return records.length > 0 ? records : null;
    };
    const readAhead = new ReadAhead(child.stdout!, limit, parse, () => reader.stopped);
    return { stderr, child, exited: exitOf(child), reader, readAhead };
  });
  try {
    for (const { stderr, child, exited, reader, readAhead } of started) {
      yield* readAhead;
      if (reader.stopped) {
        kill(child);
        continue;
      }
      reader.end();
      const exit = await exited;
      if (exit.kind === 'error' || exit.code !== 0) {
        throw new Error([describeExit(exit, journalctl), ...stderr.last].join(': '));
      }
      // This part read on to the end of the journal without meeting the next one's first entry
      // (only if the files changed meanwhile): it read what the later parts hold as well.
      return;
    }
  } finally {
    for (const { child } of started) kill(child);
  }
}
