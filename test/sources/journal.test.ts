import { execFile } from 'node:child_process';
import { chmod, cp, mkdir, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { Logger } from '../../agent/log.ts';
import { Metrics } from '../../agent/metrics.ts';
import { createParser } from '../../agent/parser/parse.ts';
import { CheckpointDirectory } from '../../agent/sources/checkpoint.ts';
import { JournalSource, type JournalSourceOptions } from '../../agent/sources/journal.ts';
import { readJournalOnce } from '../../agent/tools/bulk/journal-read.ts';
import type { LogRecord } from '../../agent/types.ts';
import { caseDirs } from '../support/case-dirs.ts';
import {
  appendJournal,
  calicoMessage,
  type JournalEntry,
  journalctlSpy,
  MACHINE_ID,
} from '../support/journal.ts';

const run = promisify(execFile);
const MINUTE_US = 60_000_000;
const EXPIRATION_MS = 10 * 60_000;
/** For the tests of a directory that vanishes or appears: noticed in a tenth of a second, not 2 s. */
const DIRECTORY_CHECK_MS = 100;

const dirs = caseDirs('journal-source');
const newDir = dirs.next;

const nowUs = (): number => Date.now() * 1000;

/** Kernel entries numbered from `first`, a microsecond apart, ending about now. */
function numbered(first: number, count: number): JournalEntry[] {
  const end = nowUs();
  return Array.from({ length: count }, (_, i) => ({
    message: `calico-packet: entry ${first + i}`,
    realtimeUs: end - count + i,
  }));
}

const texts = (records: readonly LogRecord[]): string[] => records.map((r) => r.text);
const range = (first: number, last: number): string[] =>
  Array.from({ length: last - first + 1 }, (_, i) => `calico-packet: entry ${first + i}`);

async function readAll(directory: string, journalctl?: string): Promise<LogRecord[]> {
  const records: LogRecord[] = [];
  for await (const batch of readJournalOnce(directory, { journalctl })) records.push(...batch);
  return records;
}

async function waitFor(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000) {
  const deadline = performance.now() + timeoutMs;
  while (!(await condition())) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

function capturingLogger(): { log: Logger; lines: () => { level: number; msg: string }[] } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  return {
    log: pino({ level: 'info' }, stream),
    lines: () => lines.map((line) => JSON.parse(line) as { level: number; msg: string }),
  };
}

async function errorCount(metrics: Metrics, reason: string): Promise<number> {
  const { values } = await metrics.sourceErrors.get();
  return values.find((v) => v.labels.reason === reason)?.value ?? 0;
}

/** A running JournalSource and what it has handed over, with the time each record arrived. */
class Following {
  readonly records: LogRecord[] = [];
  readonly arrivals: number[] = [];
  readonly metrics = new Metrics();
  readonly logger = capturingLogger();
  readonly source: JournalSource;
  readonly done: Promise<void>;

  constructor(
    options: Partial<JournalSourceOptions> & { directory: string; checkpointDirectory: string },
    settle?: (batch: readonly LogRecord[]) => Promise<void> | undefined,
  ) {
    const { checkpointDirectory, ...rest } = options;
    this.source = new JournalSource({
      expirationMs: EXPIRATION_MS,
      log: this.logger.log,
      metrics: this.metrics,
      checkpoints: new CheckpointDirectory(checkpointDirectory, this.logger.log),
      ...rest,
    });
    this.done = this.source.run((batch) => {
      const at = performance.now();
      for (const record of batch) {
        this.records.push(record);
        this.arrivals.push(at);
      }
      const settled = settle?.(batch);
      return settled === undefined ? undefined : { settled };
    });
    running.add(this);
  }

  until(count: number, timeoutMs?: number): Promise<void> {
    return waitFor(
      () => this.records.length >= count,
      `${count} records (have ${this.records.length})`,
      timeoutMs,
    );
  }

  async stop(): Promise<void> {
    running.delete(this);
    await this.source.stop();
    await this.done;
  }

  /** Log lines at warn level or above: what an operator is shown. */
  warnings(): { level: number; msg: string }[] {
    return this.logger.lines().filter((line) => line.level >= 40);
  }
}

interface CursorFile {
  cursor: string;
}

const running = new Set<Following>();
afterEach(async () => {
  await Promise.all([...running].map((f) => f.stop()));
});

/** A source following a journal directory of its own that already holds entries 1 and 2. */
async function followingTwoEntries(): Promise<{ dir: string; journal: string; following: Following }> {
  const dir = await newDir();
  const journal = join(dir, 'journal');
  await mkdir(journal);
  await appendJournal(join(journal, 'system.journal'), numbered(1, 2));
  const following = new Following({
    directory: journal,
    checkpointDirectory: join(dir, 'state'),
    directoryCheckMs: DIRECTORY_CHECK_MS,
  });
  await following.until(2);
  return { dir, journal, following };
}

describe('readJournalOnce', () => {
  const forged: JournalEntry[] = [
    { message: calicoMessage(101), transport: 'syslog', identifier: 'kernel' },
    { message: calicoMessage(102), transport: 'stdout', identifier: 'kernel' },
    { message: calicoMessage(103), transport: 'journal', identifier: 'kernel' },
    // What a process wrote to /dev/kmsg: journald gives it the kernel's transport, with its own facility.
    { message: calicoMessage(104), transport: 'kernel', facility: 1 },
  ];

  it('reads kernel entries of journal files directly in the directory', async () => {
    const dir = await newDir();
    const t = nowUs();
    await appendJournal(join(dir, 'x.journal'), [
      { message: calicoMessage(1), realtimeUs: t, hostname: 'gke-node-9s00' },
      ...forged,
      { message: calicoMessage(2), realtimeUs: t + 1500, hostname: 'gke-node-9s00' },
    ]);
    expect(await readAll(dir)).toEqual([
      { text: calicoMessage(1), time: Math.floor(t / 1000), host: 'gke-node-9s00' },
      { text: calicoMessage(2), time: Math.floor((t + 1500) / 1000), host: 'gke-node-9s00' },
    ]);
  });

  it('reads kernel entries of the usual DIR/<machine-id>/ layout, merged in time order', async () => {
    const dir = await newDir();
    const [first, second, third] = numbered(1, 3);
    await appendJournal(join(dir, MACHINE_ID, 'system.journal'), [first!, ...forged, third!]);
    await appendJournal(join(dir, 'flat.journal'), [second!]);
    expect(texts(await readAll(dir))).toEqual(range(1, 3));
  });

  it('does not read subdirectories that are not named like a machine ID (journalctl does not)', async () => {
    const dir = await newDir();
    await appendJournal(join(dir, 'remote', 'system.journal'), numbered(1, 1));
    expect(await readAll(dir)).toEqual([]);
  });

  it('checks the transport of each entry itself, not only through the journalctl match', async () => {
    const dir = await newDir();
    await appendJournal(join(dir, 'x.journal'), [...forged, ...numbered(1, 1)]);
    // A journalctl that ignores the match: the export stream of every entry, forged ones included.
    const exported = await run('journalctl', [`--directory=${dir}`, '--output=export'], {
      encoding: 'buffer',
    });
    const dump = join(dir, 'all.export');
    await writeFile(dump, exported.stdout);
    const fake = join(dir, 'fake-journalctl');
    await writeFile(fake, `#!/bin/sh\ncat '${dump}'\n`);
    await chmod(fake, 0o755);
    expect(texts(await readAll(dir, fake))).toEqual(range(1, 1));
  });

  it('fails clearly when the directory cannot be read or journalctl is missing', async () => {
    await expect(readAll(join(dirs.root(), 'does-not-exist'))).rejects.toThrow(
      /journalctl exited with 1: Failed to open/,
    );
    await expect(readAll(dirs.root(), '/nonexistent/journalctl')).rejects.toThrow(/not found/);
  });
});

describe('JournalSource', () => {
  it.each([
    ['directly in the directory', ''],
    ['in DIR/<machine-id>/', MACHINE_ID],
  ])('follows entries appended to a journal %s, well under a second late', async (_, subdirectory) => {
    const dir = await newDir();
    const file = join(dir, subdirectory, 'system.journal');
    await appendJournal(file, numbered(1, 2));
    const following = new Following({ directory: dir, checkpointDirectory: join(dir, 'state') });
    await following.until(2);
    const delays: number[] = [];
    for (let n = 3; n <= 6; n++) {
      // From the start of the append: systemd-journal-remote's own run time is included.
      const appending = performance.now();
      await appendJournal(file, numbered(n, 1));
      await following.until(n);
      delays.push(following.arrivals[n - 1]! - appending);
    }
    // A journal file created while following is picked up too.
    await appendJournal(join(dir, subdirectory, 'other.journal'), numbered(7, 1));
    await following.until(7);
    await following.stop();
    expect(texts(following.records)).toEqual(range(1, 7));
    console.info(`journal follow delay after append (ms): ${delays.map((d) => d.toFixed(0)).join(', ')}`);
    expect(Math.max(...delays)).toBeLessThan(500);
  });

  it('resumes from its checkpoint after a stop, with nothing lost or repeated', async () => {
    const dir = await newDir();
    const file = join(dir, 'system.journal');
    const checkpointDirectory = join(dir, 'state');
    const spy = await journalctlSpy(dir);
    await appendJournal(file, numbered(1, 3));
    const first = new Following({ directory: dir, checkpointDirectory, journalctl: spy.path });
    await first.until(3);
    await appendJournal(file, numbered(4, 2));
    await first.until(5);
    await first.stop();
    const saved = JSON.parse(await readFile(join(checkpointDirectory, 'journal.cursor.json'), 'utf8'));
    expect(saved).toEqual({ cursor: expect.stringMatching(/^s=[0-9a-f]+;i=5;/) });

    await appendJournal(file, numbered(6, 3));
    const second = new Following({ directory: dir, checkpointDirectory, journalctl: spy.path });
    await second.until(3);
    await appendJournal(file, numbered(9, 2));
    await second.until(5);
    await sleep(200);
    await second.stop();

    expect(texts([...first.records, ...second.records])).toEqual(range(1, 10));
    const runs = await spy.runs();
    expect(runs).toHaveLength(2);
    expect(runs[0]!.args).toMatch(/--since=@\d+ /);
    expect(runs[1]!.args).toContain(`--after-cursor=${saved.cursor} `);
  });

  it('keeps the cursor before an unsettled batch while later ones settle; a restart re-reads exactly from it', async () => {
    const dir = await newDir();
    const file = join(dir, 'system.journal');
    const checkpointDirectory = join(dir, 'state');
    const savedCursor = async () =>
      (JSON.parse(await readFile(join(checkpointDirectory, 'journal.cursor.json'), 'utf8')) as CursorFile)
        .cursor;
    await appendJournal(file, numbered(1, 2));
    // Entries 3 and 4 wait for the test; every other batch is settled at once.
    const opens: (() => void)[] = [];
    const settle = (batch: readonly LogRecord[]) =>
      texts(batch).some((text) => range(3, 4).includes(text))
        ? new Promise<void>((resolve) => opens.push(resolve))
        : Promise.resolve();
    const first = new Following({ directory: dir, checkpointDirectory }, settle);
    await first.until(2);
    await appendJournal(file, numbered(3, 2));
    await first.until(4);
    await appendJournal(file, numbered(5, 2));
    await first.until(6);
    await first.stop();
    expect(await savedCursor()).toMatch(/;i=2;/);

    // From a copy of the checkpoint: the first source's stays its own.
    const copy = join(dir, 'state-copy');
    await cp(checkpointDirectory, copy, { recursive: true });
    const second = new Following({ directory: dir, checkpointDirectory: copy });
    await second.until(4);
    await sleep(200);
    await second.stop();
    expect(texts(second.records)).toEqual(range(3, 6));
    // The first source's batches settle after its stop: its second stop saves that.
    for (const open of opens) open();
    await first.source.stop();
    expect(await savedCursor()).toMatch(/;i=6;/);
  });

  it('restarts journalctl after the last entry read, not the last settled: nothing is read twice while the checkpoint waits', async () => {
    const dir = await newDir();
    const file = join(dir, 'system.journal');
    const checkpointDirectory = join(dir, 'state');
    const spy = await journalctlSpy(dir);
    await appendJournal(file, numbered(1, 2));
    let hold = false;
    const settle = () => (hold ? new Promise<void>(() => {}) : undefined);
    const following = new Following({ directory: dir, checkpointDirectory, journalctl: spy.path }, settle);
    await following.until(2);
    hold = true;
    await appendJournal(file, numbered(3, 2));
    await following.until(4);
    const [firstRun] = await spy.runs();
    process.kill(firstRun!.pid, 'SIGKILL');
    await appendJournal(file, numbered(5, 1));
    await following.until(5);
    await sleep(200);
    await following.stop();
    expect(texts(following.records)).toEqual(range(1, 5));
    const runs = await spy.runs();
    expect(runs).toHaveLength(2);
    expect(runs[1]!.args).toMatch(/--after-cursor=s=[0-9a-f]+;i=4;/);
    const saved = JSON.parse(await readFile(join(checkpointDirectory, 'journal.cursor.json'), 'utf8'));
    expect(saved).toEqual({ cursor: expect.stringMatching(/;i=2;/) });
  });

  it('saves its checkpoint about once a second while running', async () => {
    const dir = await newDir();
    const checkpointDirectory = join(dir, 'state');
    await appendJournal(join(dir, 'system.journal'), numbered(1, 2));
    const following = new Following({ directory: dir, checkpointDirectory });
    await following.until(2);
    const file = join(checkpointDirectory, 'journal.cursor.json');
    await waitFor(
      () =>
        readFile(file).then(
          () => true,
          () => false,
        ),
      'the checkpoint',
      2000,
    );
    expect(JSON.parse(await readFile(file, 'utf8')).cursor).toMatch(/;i=2;/);
  });

  it('starts at now minus the expiration when there is no checkpoint', async () => {
    const dir = await newDir();
    const t = nowUs();
    await appendJournal(join(dir, 'system.journal'), [
      { message: 'calico-packet: too old', realtimeUs: t - 30 * MINUTE_US },
      { message: 'calico-packet: just too old', realtimeUs: t - 11 * MINUTE_US },
      { message: 'calico-packet: recent', realtimeUs: t - 9 * MINUTE_US },
      { message: 'calico-packet: newest', realtimeUs: t - 1000 },
    ]);
    const following = new Following({ directory: dir, checkpointDirectory: join(dir, 'state') });
    await following.until(2);
    await sleep(300);
    await following.stop();
    expect(texts(following.records)).toEqual(['calico-packet: recent', 'calico-packet: newest']);
  });

  it('counts and logs a missing journalctl once, keeps retrying, and stops cleanly', async () => {
    const dir = await newDir();
    const following = new Following({
      directory: dir,
      checkpointDirectory: join(dir, 'state'),
      journalctl: '/nonexistent/journalctl',
    });
    await waitFor(
      async () => (await errorCount(following.metrics, 'journalctl_missing')) >= 2,
      'two attempts',
    );
    await following.stop();
    const errors = following.logger.lines().filter((line) => line.level >= 50);
    expect(errors).toHaveLength(1);
    expect(errors[0]!.msg).toMatch(/\/nonexistent\/journalctl not found.*retrying in 0\.5 s/);
  });

  it('recovers by itself when a missing journalctl appears', async () => {
    const dir = await newDir();
    await appendJournal(join(dir, 'system.journal'), numbered(1, 2));
    const journalctl = join(dir, 'bin', 'journalctl');
    const following = new Following({ directory: dir, checkpointDirectory: join(dir, 'state'), journalctl });
    await waitFor(
      async () => (await errorCount(following.metrics, 'journalctl_missing')) >= 1,
      'a failed start',
    );
    await mkdir(join(dir, 'bin'));
    await writeFile(journalctl, '#!/bin/sh\nexec journalctl "$@"\n');
    await chmod(journalctl, 0o755);
    await following.until(2);
    await following.stop();
    expect(texts(following.records)).toEqual(range(1, 2));
    expect(following.warnings()).toEqual([
      expect.objectContaining({ level: 50, msg: expect.stringMatching(/journalctl not found/) }),
    ]);
    expect(await errorCount(following.metrics, 'journalctl_missing')).toBeGreaterThanOrEqual(1);
  });

  it('finds journalctl in PATH once it is installed there, after one error line', async () => {
    const dir = await newDir();
    await appendJournal(join(dir, 'system.journal'), numbered(1, 2));
    const journalctl = (await run('sh', ['-c', 'command -v journalctl'])).stdout.trim();
    const bin = join(dir, 'bin');
    await mkdir(bin);
    const path = process.env.PATH;
    // Tests of a file run one after another: nothing else spawns while PATH lacks journalctl.
    process.env.PATH = bin;
    try {
      const following = new Following({ directory: dir, checkpointDirectory: join(dir, 'state') });
      await waitFor(
        async () => (await errorCount(following.metrics, 'journalctl_missing')) >= 2,
        'two failed starts',
      );
      await symlink(journalctl, join(bin, 'journalctl'));
      await following.until(2);
      await following.stop();
      expect(texts(following.records)).toEqual(range(1, 2));
      expect(following.warnings()).toEqual([
        expect.objectContaining({
          level: 50,
          msg: expect.stringMatching(
            /^journalctl not found: the image needs journalctl \(package systemd\) in PATH/,
          ),
        }),
      ]);
    } finally {
      process.env.PATH = path;
    }
  });

  it('follows a journal directory that disappears and comes back, reporting it once', async () => {
    const { journal, following } = await followingTwoEntries();
    await rm(journal, { recursive: true });
    await waitFor(
      async () => (await errorCount(following.metrics, 'directory_missing')) === 1,
      'the vanished directory to be noticed',
    );
    // Long enough for several retries, were journalctl started on the missing directory.
    await sleep(3000);
    await mkdir(journal);
    await appendJournal(join(journal, 'system.journal'), numbered(3, 2));
    await following.until(4, 20_000);
    await following.stop();
    expect(texts(following.records)).toEqual(range(1, 4));
    expect(following.warnings()).toEqual([
      expect.objectContaining({
        level: 40,
        msg: `journal directory ${journal} does not exist; waiting for it to appear`,
      }),
    ]);
    expect(await errorCount(following.metrics, 'directory_missing')).toBe(1);
    expect(await errorCount(following.metrics, 'journalctl_exited')).toBe(0);
  });

  it('waits for a journal directory that does not exist yet, reporting it once', async () => {
    const dir = await newDir();
    const journal = join(dir, 'journal');
    const following = new Following({
      directory: journal,
      checkpointDirectory: join(dir, 'state'),
      directoryCheckMs: DIRECTORY_CHECK_MS,
    });
    await waitFor(async () => (await errorCount(following.metrics, 'directory_missing')) === 1, 'the report');
    await sleep(1000);
    await appendJournal(join(journal, 'system.journal'), numbered(1, 2));
    await following.until(2, 20_000);
    await following.stop();
    expect(texts(following.records)).toEqual(range(1, 2));
    expect(following.warnings()).toHaveLength(1);
    expect(await errorCount(following.metrics, 'directory_missing')).toBe(1);
    expect(await errorCount(following.metrics, 'journalctl_exited')).toBe(0);
  });

  it('restarts journalctl on a journal directory replaced by another, reporting it once', async () => {
    const { dir, journal, following } = await followingTwoEntries();
    await rename(journal, join(dir, 'journal.old'));
    await mkdir(journal);
    await appendJournal(join(journal, 'system.journal'), numbered(3, 2));
    await following.until(4, 20_000);
    await following.stop();
    expect(texts(following.records)).toEqual(range(1, 4));
    expect(following.warnings()).toHaveLength(1);
    // Between two looks the directory is normally already back; a look in between sees it missing.
    const replaced = await errorCount(following.metrics, 'directory_replaced');
    expect(replaced + (await errorCount(following.metrics, 'directory_missing'))).toBe(1);
    expect(await errorCount(following.metrics, 'journalctl_exited')).toBe(0);
  });

  it('skips a kernel MESSAGE over 16 KiB, with one warning and a count, and reads on', async () => {
    const dir = await newDir();
    const [first, second, third] = numbered(1, 3);
    const long = (n: number): JournalEntry => ({
      message: `${calicoMessage(n)}${'A'.repeat(16 * 1024)}`,
      realtimeUs: first!.realtimeUs! + n,
    });
    await appendJournal(join(dir, 'system.journal'), [first!, long(1), second!, long(2)]);
    const following = new Following({ directory: dir, checkpointDirectory: join(dir, 'state') });
    await following.until(2);
    await appendJournal(join(dir, 'system.journal'), [third!]);
    await following.until(3);
    await following.stop();
    expect(texts(following.records)).toEqual(range(1, 3));
    expect(await errorCount(following.metrics, 'line_too_long')).toBe(2);
    expect(following.warnings()).toEqual([
      expect.objectContaining({
        level: 40,
        msg: 'skipped journal entries whose MESSAGE is longer than 16384 bytes',
      }),
    ]);
  });

  it('skips a MESSAGE over the 64 KiB field cap as malformed output, once logged, and reads on', async () => {
    const dir = await newDir();
    const [first, second] = numbered(1, 2);
    const huge: JournalEntry = {
      message: `${calicoMessage(9)}${'B'.repeat(100_000)}`,
      realtimeUs: first!.realtimeUs! + 1,
    };
    await appendJournal(join(dir, 'system.journal'), [first!, huge, second!]);
    const following = new Following({ directory: dir, checkpointDirectory: join(dir, 'state') });
    await following.until(2);
    await following.stop();
    expect(texts(following.records)).toEqual(range(1, 2));
    expect(await errorCount(following.metrics, 'export_field_too_long')).toBe(1);
    expect(following.warnings()).toEqual([
      expect.objectContaining({ level: 40, msg: 'skipped malformed journalctl output up to the next entry' }),
    ]);
  });

  it('gives the parser no entry forged with SYSLOG_IDENTIFIER=kernel, so no drop from one', async () => {
    const dir = await newDir();
    const t = nowUs();
    // Same drop lines as the kernel's, but sent by a local process (syslog(3), stdout, sd_journal_send, and
    // a write to /dev/kmsg, which journald files under the kernel's transport with the writer's facility).
    const forged = (['syslog', 'stdout', 'journal', 'kernel'] as const).map(
      (transport, i): JournalEntry => ({
        message: calicoMessage(101 + i),
        transport,
        identifier: 'kernel',
        facility: transport === 'kernel' ? 1 : 0,
        realtimeUs: t + 10 + i,
      }),
    );
    await appendJournal(join(dir, 'system.journal'), [
      { message: calicoMessage(1), realtimeUs: t },
      ...forged,
      { message: calicoMessage(2), realtimeUs: t + 20 },
    ]);
    const following = new Following({ directory: dir, checkpointDirectory: join(dir, 'state') });
    await following.until(2);
    await sleep(300);
    await following.stop();
    const parse = createParser({ prefix: 'calico-packet' });
    const drops = following.records
      .map(parse)
      .flatMap((result) => (result.kind === 'drop' ? [result.drop] : []));
    expect(drops.map((drop) => drop.src)).toEqual(['10.4.0.1', '10.4.0.2']);
    // The forged lines are drops in themselves: only their transport or facility keeps them out.
    const asKernel = forged.map((entry) =>
      parse({ text: String(entry.message), time: Date.now(), host: null }),
    );
    expect(asKernel.map((result) => result.kind)).toEqual(['drop', 'drop', 'drop', 'drop']);
    const { values } = await following.metrics.sourceErrors.get();
    expect(values.find((v) => v.labels.reason === 'untrusted_facility')?.value).toBe(1);
  });

  it('restarts journalctl killed from outside, after the last entry handled', async () => {
    const dir = await newDir();
    const file = join(dir, 'system.journal');
    const spy = await journalctlSpy(dir);
    await appendJournal(file, numbered(1, 3));
    const following = new Following({
      directory: dir,
      checkpointDirectory: join(dir, 'state'),
      journalctl: spy.path,
    });
    await following.until(3);
    const [first] = await spy.runs();
    process.kill(first!.pid, 'SIGKILL');
    await appendJournal(file, numbered(4, 2));
    await following.until(5);
    await appendJournal(file, numbered(6, 1));
    await following.until(6);
    await sleep(200);
    await following.stop();
    expect(texts(following.records)).toEqual(range(1, 6));
    expect(await errorCount(following.metrics, 'journalctl_exited')).toBe(1);
    const runs = await spy.runs();
    expect(runs).toHaveLength(2);
    expect(runs[1]!.args).toMatch(/--after-cursor=s=[0-9a-f]+;i=3;/);
  });

  it('waits for the handler before reading on, and counts what it read', async () => {
    const dir = await newDir();
    await appendJournal(join(dir, 'system.journal'), numbered(1, 3000));
    const metrics = new Metrics();
    const source = new JournalSource({
      directory: dir,
      checkpoints: new CheckpointDirectory(join(dir, 'state'), pino({ level: 'silent' })),
      expirationMs: EXPIRATION_MS,
      log: pino({ level: 'silent' }),
      metrics,
    });
    const seen: string[] = [];
    let inFlight = 0;
    let overlapped = false;
    const done = source.run(async (batch) => {
      overlapped ||= inFlight > 0;
      inFlight++;
      await sleep(2);
      seen.push(...texts(batch));
      inFlight--;
    });
    await waitFor(() => seen.length >= 3000, 'every record');
    await source.stop();
    await done;
    expect(overlapped).toBe(false);
    expect(seen).toEqual(range(1, 3000));
    expect((await metrics.linesRead.get()).values[0]!.value).toBe(3000);
  });
});
