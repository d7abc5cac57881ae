// Real journal files for tests and benches: entries are written in journal export format, trusted
// fields included, to systemd-journal-remote, which stores them like journald would. Running it again
// on the same output file appends, and `journalctl --follow` sees the appended entries.

import { spawn } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

export const JOURNAL_REMOTE = '/lib/systemd/systemd-journal-remote';
/** A machine ID as the directory name of the usual /var/log/journal/<machine-id>/ layout. */
export const MACHINE_ID = '5f0c2a9e3b7d4e1f8a6b9c0d1e2f3a4b';
const BOOT_ID = '0a1b2c3d4e5f60718293a4b5c6d7e8f9';

export interface JournalEntry {
  message: string | Buffer;
  /** Defaults to kernel. */
  transport?: string;
  hostname?: string;
  /** Microseconds since the epoch; defaults to now. */
  realtimeUs?: number;
  /** Defaults to kernel, as journald sets it for kernel messages (and anyone can forge it). */
  identifier?: string;
  /**
   * SYSLOG_FACILITY; defaults to 0, the kernel's. journald takes a /dev/kmsg record's from its priority:
   * what a process wrote to /dev/kmsg has _TRANSPORT=kernel and facility 1 (user) or another, never 0.
   */
  facility?: number;
  /** Extra fields, written after the usual ones. */
  fields?: Readonly<Record<string, string | Buffer>>;
}

/** The text form when it round-trips, else the binary form: name, LE uint64 length, bytes. */
export function exportField(name: string, value: string | Buffer): Buffer {
  const text = typeof value === 'string' ? value : value.toString('utf8');
  const bytes = typeof value === 'string' ? Buffer.from(value) : value;
  if (!text.includes('\n') && Buffer.from(text).equals(bytes)) return Buffer.from(`${name}=${text}\n`);
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(bytes.length));
  return Buffer.concat([Buffer.from(`${name}\n`), length, bytes, Buffer.from('\n')]);
}

export function exportEntry(entry: JournalEntry): Buffer {
  const realtime = entry.realtimeUs ?? Date.now() * 1000;
  const fields: [string, string | Buffer][] = [
    ['__REALTIME_TIMESTAMP', String(realtime)],
    ['__MONOTONIC_TIMESTAMP', String(realtime % 1_000_000_000_000)],
    ['_BOOT_ID', BOOT_ID],
    ['_TRANSPORT', entry.transport ?? 'kernel'],
    ['_HOSTNAME', entry.hostname ?? 'node-a'],
    ['SYSLOG_IDENTIFIER', entry.identifier ?? 'kernel'],
    ['PRIORITY', '4'],
    ['SYSLOG_FACILITY', String(entry.facility ?? 0)],
    ['MESSAGE', entry.message],
    ...Object.entries(entry.fields ?? {}),
  ];
  return Buffer.concat([...fields.map(([name, value]) => exportField(name, value)), Buffer.from('\n')]);
}

/** Appends export-format data (or entries) to a journal file, creating it and its directory if needed. */
export async function appendJournal(file: string, input: readonly JournalEntry[] | Buffer): Promise<void> {
  const data = Buffer.isBuffer(input) ? input : Buffer.concat(input.map(exportEntry));
  await mkdir(dirname(file), { recursive: true });
  const child = spawn(JOURNAL_REMOTE, [`--output=${file}`, '-'], { stdio: ['pipe', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', resolve);
  });
  child.stdin.end(data);
  const code = await exited;
  if (code !== 0) throw new Error(`systemd-journal-remote exited with ${code}: ${stderr}`);
}

export function tempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `${prefix}-`));
}

/** A Calico LOG line as the kernel prints it (no trailing newline in the journal). */
export function calicoMessage(n: number, prefix = 'calico-packet: '): string {
  return `${prefix}IN=cali6e7bb88b982 OUT=eth0 MAC=ee:ee:ee:ee:ee:ee:ea:20:b8:68:45:bd:08:00 SRC=10.4.${(n >> 8) & 255}.${n & 255} DST=10.4.1.6 LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=${n & 65535} DF PROTO=TCP SPT=${1024 + (n % 60000)} DPT=12865 WINDOW=42600 RES=0x00 SYN URGP=0 `;
}

/**
 * A journalctl stand-in that records each invocation (pid and arguments) and then execs the real
 * one, so tests can see restarts and kill the very process the source started.
 */
export async function journalctlSpy(
  dir: string,
): Promise<{ path: string; runs(): Promise<JournalctlRun[]> }> {
  const path = join(dir, 'journalctl-spy');
  const log = join(dir, 'journalctl-runs');
  await writeFile(path, `#!/bin/sh\nprintf '%s\\t%s\\n' "$$" "$*" >> '${log}'\nexec journalctl "$@"\n`);
  await chmod(path, 0o755);
  const runs = async (): Promise<JournalctlRun[]> => {
    const text = await readFile(log, 'utf8').catch(() => '');
    return text
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => {
        const [pid, args] = line.split('\t');
        return { pid: Number(pid), args: args ?? '' };
      });
  };
  return { path, runs };
}

export interface JournalctlRun {
  pid: number;
  /** The arguments, joined by spaces. */
  args: string;
}
