/**
 * Running journalctl for the readers of the journal: its arguments (kernel transport only), its export
 * entries as records, its exit and its stderr.
 */

import { type ChildProcess, spawn } from 'node:child_process';
import { LineSplitter, linesOf } from '../lines.ts';
import type { LogRecord } from '../types.ts';
import type { ExportEntry } from './journal-export.ts';
import { KERNEL_FACILITY } from './kmsg-record.ts';

export const DEFAULT_JOURNALCTL = 'journalctl';
const KILL_TIMEOUT_MS = 5000;
const STDERR_LINES_LOGGED = 20;
/** journalctl's messages are one short sentence: a longer line is cut, as every reader cuts lines. */
const STDERR_LINE_BYTES = 500;
const STDERR_LINES_KEPT = 5;

export type Rejection = 'untrusted_transport' | 'untrusted_facility' | 'incomplete_entry';

export function journalctlArgs(
  directory: string,
  extra: readonly string[],
  output = ['--output=export'],
): string[] {
  return [`--directory=${directory}`, ...output, '--no-pager', '--merge', ...extra, '_TRANSPORT=kernel'];
}

function recordOf(entry: ExportEntry): LogRecord | Rejection {
  if (entry.transport !== 'kernel') return 'untrusted_transport';
  // What a process wrote to /dev/kmsg reaches the journal through the kernel's transport too, with its own
  // facility. An entry without the field (journald always writes it today) is judged by its transport.
  if (entry.facility !== null && entry.facility !== KERNEL_FACILITY) return 'untrusted_facility';
  if (entry.message === null || entry.realtimeUs === null) return 'incomplete_entry';
  return { text: entry.message, time: Math.floor(entry.realtimeUs / 1000), host: entry.hostname };
}

/** The entries that are kernel messages, as records; `reject` hears why each other one is not. */
export function toRecords(entries: readonly ExportEntry[], reject: (reason: Rejection) => void): LogRecord[] {
  const records: LogRecord[] = [];
  for (const entry of entries) {
    const record = recordOf(entry);
    if (typeof record === 'string') reject(record);
    else records.push(record);
  }
  return records;
}

export type Exit =
  | { kind: 'error'; error: NodeJS.ErrnoException }
  | { kind: 'exit'; code: number | null; signal: NodeJS.Signals | null };

export function exitOf(child: ChildProcess): Promise<Exit> {
  return new Promise((resolve) => {
    child.once('error', (error) => resolve({ kind: 'error', error }));
    child.once('close', (code, signal) => resolve({ kind: 'exit', code, signal }));
  });
}

export function describeExit(exit: Exit, journalctl: string): string {
  if (exit.kind === 'error') {
    return exit.error.code === 'ENOENT'
      ? `${journalctl} not found: the image needs journalctl (package systemd) in PATH`
      : `cannot run ${journalctl}: ${exit.error.message}`;
  }
  return exit.signal !== null
    ? `journalctl was killed by ${exit.signal}`
    : `journalctl exited with ${exit.code}`;
}

/** journalctl's stderr as lines, bounded in length and number, whatever it prints. */
export class StderrLines {
  readonly last: string[] = [];
  private readonly splitter = new LineSplitter({ maxLineBytes: STDERR_LINE_BYTES });
  private count = 0;
  private readonly onLine: (line: string) => void;

  constructor(onLine: (line: string) => void = () => {}) {
    this.onLine = onLine;
  }

  push(chunk: Buffer): void {
    for (const line of linesOf(this.splitter.push(chunk))) this.line(line);
  }

  end(): void {
    for (const line of linesOf(this.splitter.finish())) this.line(line);
  }

  private line(line: string): void {
    if (line.trim() === '') return;
    this.last.push(line);
    if (this.last.length > STDERR_LINES_KEPT) this.last.shift();
    if (++this.count <= STDERR_LINES_LOGGED) this.onLine(line);
  }
}

export function startJournalctl(
  journalctl: string,
  args: readonly string[],
  stderr: StderrLines,
): ChildProcess {
  const child = spawn(journalctl, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stderr!.on('data', (chunk: Buffer) => stderr.push(chunk));
  child.stderr!.on('end', () => stderr.end());
  return child;
}

const isAlive = (child: ChildProcess): boolean => child.exitCode === null && child.signalCode === null;

/** SIGTERM, then SIGKILL should journalctl not be gone soon after: stop() waits for its exit. */
export function kill(child: ChildProcess): void {
  if (!isAlive(child)) return;
  child.kill();
  setTimeout(() => {
    if (isAlive(child)) child.kill('SIGKILL');
  }, KILL_TIMEOUT_MS).unref();
}
