// A real systemd-journald for tests, reading the real kernel's /dev/kmsg into a journal the test owns. It runs
// in a private mount namespace: a tmpfs on /run gives it sockets and state of its own (the host may run
// its own journald, or another test one), and the test's directory bound on /run/log/journal receives its
// runtime journal. Needs root, util-linux (unshare, nsenter, setpriv, logger) and systemd-journald.

import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { endianness, tmpdir } from 'node:os';
import { join } from 'node:path';
import { alive } from './kernel-net.ts';
import { newestKmsgSequence } from './kmsg.ts';

export const JOURNALD = '/lib/systemd/systemd-journald';
const START_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 5000;
/** Then the pid of the test process, so that a later run can tell the directory of one that was killed. */
const DIR_PREFIX = 'journald-';

// The host's journald.conf and drop-ins are hidden: Storage=volatile keeps the journal in the bound
// directory whatever the host sets, and nothing is forwarded to the host's syslog, console or kmsg.
const CONFIG = `[Journal]
Storage=volatile
ReadKMsg=yes
ForwardToSyslog=no
ForwardToKMsg=no
ForwardToConsole=no
ForwardToWall=no
RateLimitBurst=0
`;

// $1 is the harness's directory. journald skips kmsg records whose sequence number is below the one in
// kernel-seqnum (its memory of what it has stored, across restarts), so the copy placed there before it
// starts keeps everything earlier tests left in the ring buffer out of this journal.
const SCRIPT = `set -e
mount -t tmpfs tmpfs /run
mkdir -p /run/log/journal /run/systemd/journal
mount --bind "$1/journal" /run/log/journal
cp "$1/kernel-seqnum" /run/systemd/journal/kernel-seqnum
mount -t tmpfs tmpfs /etc/systemd
cp "$1/journald.conf" /etc/systemd/journald.conf
exec ${JOURNALD}
`;

/** One entry as `journalctl --output=json` prints it (fields journald stores as binary are byte arrays). */
export type JournalJson = Record<string, string | number[] | undefined>;

/** Directories of test processes killed before their exit handler ran (their journald died with them). */
function sweepLeftovers(): void {
  for (const name of readdirSync(tmpdir())) {
    const owner = Number(new RegExp(`^${DIR_PREFIX}(\\d+)-`).exec(name)?.[1]);
    if (Number.isInteger(owner) && !alive(owner))
      rmSync(join(tmpdir(), name), { recursive: true, force: true });
  }
}

export class Journald {
  /** journald's pid; its mount namespace lives as long as it does. */
  readonly pid: number;
  /** The journal directory (JOURNAL_DIRECTORY): journald writes <machine-id>/system.journal in it. */
  readonly directory: string;
  private readonly root: string;
  private readonly exited: Promise<void>;
  private readonly stderr: string[];
  private stopped = false;
  /** Once journald has exited its pid may be another process's: it is never signalled again. */
  private gone = false;
  private readonly onExit = () => this.kill();

  private constructor(pid: number, root: string, exited: Promise<void>, stderr: string[]) {
    this.pid = pid;
    this.root = root;
    this.directory = join(root, 'journal');
    this.exited = exited;
    this.stderr = stderr;
    void exited.then(() => {
      this.gone = true;
    });
    process.once('exit', this.onExit);
  }

  /** Starts journald and waits until its syslog socket and journal file exist; only kmsg records from now on. */
  static async start(): Promise<Journald> {
    if (process.getuid?.() !== 0)
      throw new Error('a real journald must run as root (mount namespaces, /dev/kmsg)');
    sweepLeftovers();
    const root = mkdtempSync(join(tmpdir(), `${DIR_PREFIX}${process.pid}-`));
    let journald: Journald | undefined;
    try {
      mkdirSync(join(root, 'journal'));
      writeFileSync(join(root, 'journald.conf'), CONFIG);
      const next = Buffer.alloc(8);
      const sequence = BigInt(newestKmsgSequence() + 1);
      if (endianness() === 'LE') next.writeBigUInt64LE(sequence);
      else next.writeBigUInt64BE(sequence);
      writeFileSync(join(root, 'kernel-seqnum'), next);
      // The parent-death signal survives each exec down to journald: it dies with the test process even
      // when that is killed before its exit handler runs, and takes its mount namespace with it.
      const child = spawn(
        'setpriv',
        [
          '--pdeathsig',
          'KILL',
          'unshare',
          '--mount',
          '--propagation',
          'private',
          'sh',
          '-c',
          SCRIPT,
          'sh',
          root,
        ],
        // Its own messages to stderr, not to the host's /dev/kmsg, where every kmsg reader would see them.
        {
          env: { PATH: process.env.PATH ?? '', SYSTEMD_LOG_TARGET: 'console' },
          stdio: ['ignore', 'ignore', 'pipe'],
        },
      );
      const stderr: string[] = [];
      child.stderr.setEncoding('utf8').on('data', (chunk: string) => stderr.push(chunk));
      const exited = new Promise<void>((resolve) => {
        child.once('error', () => resolve());
        child.once('close', () => resolve());
      });
      if (child.pid === undefined) throw new Error(`cannot run setpriv: ${stderr.join('')}`);
      journald = new Journald(child.pid, root, exited, stderr);
      await journald.ready();
      return journald;
    } catch (err) {
      if (journald) await journald.stop();
      else rmSync(root, { recursive: true, force: true });
      throw err;
    }
  }

  /** Sends `message` to journald's syslog socket from inside its namespace, as any local process could. */
  forge(message: string, identifier = 'kernel'): void {
    execFileSync(
      'nsenter',
      [
        '-t',
        String(this.pid),
        '-m',
        'logger',
        '-u',
        '/run/systemd/journal/dev-log',
        '-t',
        identifier,
        '--',
        message,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
  }

  /** Every entry in the journal so far, oldest first. */
  entries(...matches: string[]): JournalJson[] {
    const out = execFileSync(
      'journalctl',
      [`--directory=${this.directory}`, '--output=json', '--no-pager', '--merge', ...matches],
      { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 },
    );
    return out
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line) as JournalJson);
  }

  /** SIGTERM, then SIGKILL if journald lingers; removes the directory. Idempotent. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    process.removeListener('exit', this.onExit);
    this.signal('SIGTERM');
    const late = new Promise<'late'>((resolve) => setTimeout(resolve, STOP_TIMEOUT_MS, 'late').unref());
    if ((await Promise.race([this.exited, late])) === 'late') this.signal('SIGKILL');
    await this.exited;
    rmSync(this.root, { recursive: true, force: true });
  }

  /** For the exit handler, which cannot wait. */
  private kill(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.signal('SIGKILL');
    rmSync(this.root, { recursive: true, force: true });
  }

  private signal(name: NodeJS.Signals): void {
    if (this.gone) return;
    try {
      process.kill(this.pid, name);
    } catch {
      // Exited before its close event.
    }
  }

  private async ready(): Promise<void> {
    // /proc/<pid>/root sees the files through journald's own mount namespace.
    const socket = `/proc/${this.pid}/root/run/systemd/journal/dev-log`;
    const deadline = Date.now() + START_TIMEOUT_MS;
    for (;;) {
      if (this.gone) throw new Error(`journald exited while starting: ${this.stderr.join('').trim()}`);
      if (existsSync(socket) && this.entries().length > 0) return;
      if (Date.now() > deadline) {
        throw new Error(`journald not ready after ${START_TIMEOUT_MS} ms: ${this.stderr.join('').trim()}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}
