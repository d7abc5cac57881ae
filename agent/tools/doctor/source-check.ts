/**
 * doctor's look at the log source: can it be read, and what do its lines of the last
 * PACKET_DROP_EXPIRATION_MINUTES say once put through the agent's own parser.
 */

import { open, readFile as readText } from 'node:fs/promises';
import type { Config, SourceSetting } from '../../config.ts';
import { LineSplitter, linesOf } from '../../lines.ts';
import { createParser } from '../../parser/parse.ts';
import { normalizePrefix } from '../../prefix-template.ts';
import { readBackStart } from '../../sources/file.ts';
import { journalFilePaths } from '../../sources/journal-files.ts';
import { KmsgReader, monotonicBootTime, NOT_A_CHARACTER_DEVICE, openKmsgDevice } from '../../sources/kmsg.ts';
import { kernelLogRecord, parseKmsgRecord } from '../../sources/kmsg-record.ts';
import { SyslogReader } from '../../sources/syslog/record.ts';
import { readJournalOnce } from '../bulk/journal-read.ts';
import { CensusTally, printable } from './census.ts';
import type { KmsgReport, LineCensus, SourceReport } from './types.ts';

function errorText(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  if (code === 'ENOENT') return 'it does not exist';
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  if (code === 'ENOTDIR') return 'it is not a directory';
  if (code === 'EISDIR') return 'it is a directory';
  if (code === NOT_A_CHARACTER_DEVICE) return 'it is not a character device';
  return err instanceof Error ? err.message : String(err);
}

interface Window {
  since: number;
  now: number;
}

interface ReadOutcome {
  census: LineCensus;
  error: string | null;
  journalFiles: number | null;
  bytesRead: number | null;
  truncated: boolean;
  kmsg: KmsgReport | null;
}

/** The agent's parser for the configured prefix. */
function parserFor(config: Config) {
  return createParser({ prefix: config.logPrefix });
}

/** Journal files journalctl would read, and whether any of them can be opened. */
async function journalFiles(directory: string): Promise<{ found: number; readable: number }> {
  const files = await journalFilePaths(directory);
  let readable = 0;
  for (const file of files) {
    const handle = await open(file, 'r').catch(() => null);
    if (handle === null) continue;
    readable++;
    await handle.close();
  }
  return { found: files.length, readable };
}

async function readJournal(directory: string, config: Config, window: Window): Promise<ReadOutcome> {
  const tally = new CensusTally();
  const outcome = (error: string | null, files: number | null): ReadOutcome => ({
    census: tally.census(),
    error: error === null ? null : printable(error),
    journalFiles: files,
    bytesRead: null,
    truncated: false,
    kmsg: null,
  });
  let files: { found: number; readable: number };
  try {
    files = await journalFiles(directory);
  } catch (err) {
    return outcome(`cannot read the journal directory ${directory}: ${errorText(err)}`, null);
  }
  if (files.found === 0) return outcome(`no journal files in ${directory}`, 0);
  if (files.readable === 0) {
    return outcome(`none of the ${files.found} journal files in ${directory} can be opened`, files.found);
  }
  const parse = parserFor(config);
  try {
    // In one part: the doctor may run beside the agent, within its memory limit.
    const options = { sinceMs: window.since, parallelMinBytes: Number.POSITIVE_INFINITY };
    for await (const batch of readJournalOnce(directory, options)) {
      for (const record of batch) {
        // journalctl's --since has whole seconds.
        if (record.time < window.since) continue;
        tally.add(parse(record), record);
      }
    }
  } catch (err) {
    return outcome(`journalctl cannot read ${directory}: ${errorText(err)}`, files.found);
  }
  return outcome(null, files.found);
}

/**
 * Reads the lines of the file's last READ_BACK_BYTES, what the agent reads back on a first start;
 * throws what opening or reading throws.
 */
async function forEachFileLine(
  path: string,
  onLine: (line: string) => void,
): Promise<{ bytesRead: number; truncated: boolean }> {
  const handle = await open(path, 'r');
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw Object.assign(new Error('it is not a regular file'), { code: 'ENOTFILE' });
    // Where the agent's first start reads from, so doctor looks at exactly the lines the agent would.
    const { offset: start, midLine = false } = await readBackStart(handle, info.size);
    const splitter = new LineSplitter({ offset: start, midLine });
    let bytesRead = 0;
    if (info.size > start) {
      for await (const chunk of handle.createReadStream({ start, end: info.size - 1, autoClose: false })) {
        bytesRead += (chunk as Buffer).length;
        for (const line of linesOf(splitter.push(chunk as Buffer))) onLine(line);
      }
    }
    for (const line of linesOf(splitter.finish())) onLine(line);
    return { bytesRead, truncated: start > 0 };
  } finally {
    await handle.close();
  }
}

async function readFile(path: string, config: Config, window: Window): Promise<ReadOutcome> {
  const tally = new CensusTally();
  const parse = parserFor(config);
  // Read as the agent's file source reads it, with "now" fixed at the doctor's start; each line's own stamp
  // places it in or out of the window (a line without one is kept, to be reported).
  const syslog = new SyslogReader({
    prefix: config.logPrefix,
    timeLayout: config.timeLayout,
    now: () => window.now,
  });
  const onLine = (line: string): void => {
    const record = syslog.record(line);
    if (record.time < window.since) return;
    tally.add(parse(record), record);
  };
  try {
    const { bytesRead, truncated } = await forEachFileLine(path, onLine);
    return { census: tally.census(), error: null, journalFiles: null, bytesRead, truncated, kmsg: null };
  } catch (err) {
    return {
      census: tally.census(),
      error: printable(`cannot read ${path}: ${errorText(err)}`),
      journalFiles: null,
      bytesRead: null,
      truncated: false,
      kmsg: null,
    };
  }
}

const DMESG_RESTRICT = '/proc/sys/kernel/dmesg_restrict';

/** kernel.dmesg_restrict, or null where it cannot be read. */
async function dmesgRestrict(): Promise<number | null> {
  const text = (await readText(DMESG_RESTRICT, 'utf8').catch(() => '')).trim();
  return /^[0-9]+$/.test(text) ? Number(text) : null;
}

/**
 * Reads the whole ring buffer, as the agent's first start does, and puts the kernel's own records of the
 * window through the agent's parser; what processes wrote to the device is left out, as the agent leaves it.
 */
async function readKmsg(path: string, config: Config, window: Window): Promise<ReadOutcome> {
  const tally = new CensusTally();
  const kmsg: KmsgReport = { records: 0, dmesgRestrict: await dmesgRestrict() };
  const outcome = (error: string | null): ReadOutcome => ({
    census: tally.census(),
    error: error === null ? null : printable(error),
    journalFiles: null,
    bytesRead: null,
    truncated: false,
    kmsg,
  });
  let reader: KmsgReader;
  try {
    reader = new KmsgReader(openKmsgDevice(path));
  } catch (err) {
    return outcome(`cannot open ${path}: ${errorText(err)}`);
  }
  const parse = parserFor(config);
  const bootTime = monotonicBootTime();
  try {
    for (let text = reader.next(); text !== null; text = reader.next()) {
      kmsg.records++;
      const parsed = parseKmsgRecord(text);
      const record = parsed.kind === 'record' ? kernelLogRecord(parsed.record, bootTime, '') : null;
      if (record === null || record.time < window.since) continue;
      tally.add(parse(record), record);
    }
  } catch (err) {
    return outcome(`cannot read ${path}: ${errorText(err)}`);
  } finally {
    reader.close();
  }
  return outcome(null);
}

/** Reads the window of the configured source; never throws for a source that cannot be read. */
export async function checkSource(config: Config, source: SourceSetting, now: number): Promise<SourceReport> {
  const window: Window = { since: now - config.expirationMs, now };
  const readers = { journal: readJournal, file: readFile, kmsg: readKmsg };
  const read = await readers[source.kind](source.path, config, window);
  return {
    kind: source.kind,
    path: source.path,
    prefix: normalizePrefix(config.logPrefix),
    windowMinutes: config.expirationMs / 60_000,
    since: new Date(window.since).toISOString(),
    readable: read.error === null,
    error: read.error,
    journalFiles: read.journalFiles,
    bytesRead: read.bytesRead,
    truncated: read.truncated,
    kmsg: read.kmsg,
    ...read.census,
  };
}
